// Fuzz target for CaptureReader: the input is a whole capture file. It is put
// in a memfd (a real descriptor, so the reader's read(2) loop runs as on a
// file) and read to the end. Besides "no crash, no leak, no UB", it checks
// the reader's promises from capture.hpp and docs/capture-format.md:
// records come back in file order and inside the file, errors point inside
// the file and are sticky, a clean end is exactly at the end of the input,
// and the read buffer stays bounded. An input that starts with a zstd frame
// magic is decompressed: its offsets are in the decompressed data, whose
// size is not known here, so they are checked for order only.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "pgwire/capture.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

int memfd_with(const uint8_t* data, size_t size) {
  int fd = memfd_create("capture-fuzz", MFD_CLOEXEC);
  check(fd >= 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    check(n > 0);
    done += static_cast<size_t>(n);
  }
  check(::lseek(fd, 0, SEEK_SET) == 0);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgwire;
  auto opened = CaptureReader::from_fd(memfd_with(data, size), true, "fuzz");
  if (!opened) {
    check(opened.error().offset <= 28);  // header errors point into the fixed header
    return 0;
  }
  CaptureReader& reader = **opened;
  check(reader.version_major() == kCaptureVersionMajor);
  // The end of the data the offsets are in: unknown for a compressed input.
  const uint64_t end = reader.compressed() ? UINT64_MAX : size;
  check(reader.offset() >= kCaptureFileHeaderFixedSize + 18 && reader.offset() <= end);

  CaptureRecord rec;
  uint64_t previous_end = reader.offset();
  uint64_t records = 0;
  for (;;) {
    Result<bool> r = reader.next(rec);
    if (!r) {
      const Error& e = r.error();
      // Damage is reported where the bad record starts, which is not consumed.
      check(e.offset == reader.offset() && e.offset >= previous_end);
      check(e.offset < end);
      CaptureRecord again;
      Result<bool> r2 = reader.next(again);
      check(!r2.ok() && r2.error().code == e.code && r2.error().offset == e.offset);
      break;
    }
    if (!*r) {
      check(reader.compressed() || reader.offset() == size);  // a clean end only at the end of the input
      break;
    }
    ++records;
    // In file order, inside the file, and the views inside the record.
    check(rec.file_offset >= previous_end);
    check(reader.offset() <= end);
    const uint64_t record_size = reader.offset() - rec.file_offset;
    check(record_size >= kCaptureRecordHeaderSize + kCaptureRecordTrailerSize);
    check(record_size <= kCaptureRecordHeaderSize + kMaxCaptureReadLength + kCaptureRecordTrailerSize);
    check(rec.data.size() + rec.value.size() + rec.client.size() + rec.server.size() + rec.reason.size() +
              rec.key.size() <=
          record_size);
    check(static_cast<uint8_t>(rec.direction) <= 1);
    check(static_cast<uint8_t>(rec.frame_kind) <= static_cast<uint8_t>(FrameKind::kOpaque));
    // Touch every byte the record points to (ASan checks the views are live).
    volatile uint8_t sink = 0;
    for (std::byte b : rec.data) sink = sink ^ std::to_integer<uint8_t>(b);
    for (std::byte b : rec.value) sink = sink ^ std::to_integer<uint8_t>(b);
    for (char c : rec.client) sink = sink ^ static_cast<uint8_t>(c);
    for (char c : rec.server) sink = sink ^ static_cast<uint8_t>(c);
    for (char c : rec.reason) sink = sink ^ static_cast<uint8_t>(c);
    for (char c : rec.key) sink = sink ^ static_cast<uint8_t>(c);
    previous_end = reader.offset();
  }
  check(reader.buffer_capacity() <= kCaptureFileHeaderFixedSize + kMaxCaptureReadLength);
  check(reader.compressed() ||
        records + reader.skipped_records() <= size / (kCaptureRecordHeaderSize + kCaptureRecordTrailerSize));
  return 0;
}
