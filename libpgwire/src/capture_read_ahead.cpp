#include "pgwire/capture_read_ahead.hpp"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace pgwire {
namespace {

constexpr size_t kBlocks = 4;              // blocks in flight: filling, waiting, being read
constexpr size_t kBlockBytes = 256 << 10;  // a block is handed over past this many bytes...
constexpr size_t kBlockRecords = 2048;     // ...or this many records

// Records copied out of the reader's buffer: the reader reuses its buffer at
// every next(), the block lives until the caller is done with it.
struct Block {
  struct Entry {
    CaptureRecord rec;
    uint64_t end_offset = 0;    // the reader's offset() once the record was read
    uint64_t input_offset = 0;  // and its input_offset()
  };
  // Allocated once, to kBlockBytes plus the largest record: records are
  // added while size < kBlockBytes, so it never needs to grow and the views
  // into it stay valid while it fills.
  static constexpr size_t kCapacity =
      kBlockBytes + kCaptureRecordHeaderSize + kMaxCaptureReadLength + kCaptureRecordTrailerSize;
  std::unique_ptr<std::byte[]> bytes{new std::byte[kCapacity]};
  size_t size = 0;
  std::vector<Entry> entries;
  std::optional<Error> error;  // after the entries: the reader's error...
  bool end = false;            // ...or its clean end
  uint64_t final_offset = 0;   // the reader's offset() after that
  uint64_t final_input = 0;    // and its input_offset()

  Block() { entries.reserve(kBlockRecords); }
  bool full() const { return size >= kBlockBytes || entries.size() >= kBlockRecords; }

  Bytes copy(Bytes b) {
    if (b.empty()) return {};
    std::byte* at = bytes.get() + size;
    std::memcpy(at, b.data(), b.size());
    size += b.size();
    return {at, b.size()};
  }
  std::string_view copy(std::string_view s) { return as_string_view(copy(as_bytes(s))); }

  void add(const CaptureRecord& r, uint64_t end_offset, uint64_t input_offset) {
    Entry& e = entries.emplace_back();
    e.rec = r;
    e.rec.client = copy(r.client);
    e.rec.server = copy(r.server);
    e.rec.data = copy(r.data);
    e.rec.reason = copy(r.reason);
    e.rec.key = copy(r.key);
    e.rec.value = copy(r.value);
    e.end_offset = end_offset;
    e.input_offset = input_offset;
  }
};

}  // namespace

struct CaptureReadAhead::Impl {
  std::unique_ptr<CaptureReader> reader;
  CaptureRecord unthreaded;  // what next() returns without a thread
  std::thread thread;

  std::mutex mu;
  std::condition_variable ready_cv;           // a block was filled
  std::condition_variable free_cv;            // a block was given back, or stop
  std::vector<std::unique_ptr<Block>> ready;  // filled, oldest first
  size_t ready_head = 0;
  std::vector<std::unique_ptr<Block>> free;
  size_t blocks = 0;  // made so far, at most kBlocks
  bool stop = false;

  // The caller's side.
  std::unique_ptr<Block> current;
  size_t pos = 0;
  uint64_t offset = 0;
  uint64_t input_offset = 0;
  std::optional<Error> failed;
  bool ended = false;

  // ---- the reading thread ----

  std::unique_ptr<Block> take_free() {
    std::unique_lock lock(mu);
    free_cv.wait(lock, [&] { return stop || !free.empty() || blocks < kBlocks; });
    if (stop) return nullptr;
    if (free.empty()) {
      ++blocks;
      return std::make_unique<Block>();
    }
    std::unique_ptr<Block> b = std::move(free.back());
    free.pop_back();
    return b;
  }

  void publish(std::unique_ptr<Block> b) {
    {
      std::lock_guard lock(mu);
      ready.push_back(std::move(b));
    }
    ready_cv.notify_one();
  }

  // Fills `b` with records; true when the reader is done (end or error).
  bool fill(Block& b) {
    b.size = 0;
    b.entries.clear();
    b.error.reset();
    b.end = false;
    CaptureRecord rec;
    while (!b.full()) {
      Result<bool> r = reader->next(rec);
      if (!r || !*r) {
        if (!r) b.error = r.error();
        b.end = r.ok();
        b.final_offset = reader->offset();
        b.final_input = reader->input_offset();
        return true;
      }
      b.add(rec, reader->offset(), reader->input_offset());
    }
    return false;
  }

  void run() {
    for (;;) {
      std::unique_ptr<Block> b = take_free();
      if (!b) return;
      const bool done = fill(*b);
      publish(std::move(b));
      if (done) return;
    }
  }

  // ---- the caller's side ----

  std::unique_ptr<Block> take_ready() {
    std::unique_lock lock(mu);
    ready_cv.wait(lock, [&] { return ready_head < ready.size(); });
    std::unique_ptr<Block> b = std::move(ready[ready_head++]);
    if (ready_head == ready.size()) {
      ready.clear();
      ready_head = 0;
    }
    return b;
  }

  void give_back(std::unique_ptr<Block> b) {
    {
      std::lock_guard lock(mu);
      free.push_back(std::move(b));
    }
    free_cv.notify_one();
  }

  Result<const CaptureRecord*> next() {
    if (failed) return *failed;
    if (ended) return nullptr;
    while (!current || pos == current->entries.size()) {
      if (current) {
        // Every record of the block was returned: now what came after them.
        if (current->error || current->end) {
          offset = current->final_offset;
          input_offset = current->final_input;
          failed = current->error;
          ended = current->end;
          give_back(std::move(current));
          if (failed) return *failed;
          return nullptr;
        }
        // Given back only now: the caller was using the last record until this call.
        give_back(std::move(current));
      }
      current = take_ready();
      pos = 0;
    }
    const Block::Entry& e = current->entries[pos++];
    offset = e.end_offset;
    input_offset = e.input_offset;
    return &e.rec;
  }
};

CaptureReadAhead::CaptureReadAhead(std::unique_ptr<CaptureReader> reader, bool threaded)
    : impl_(std::make_unique<Impl>()) {
  impl_->reader = std::move(reader);
  impl_->offset = impl_->reader->offset();
  impl_->input_offset = impl_->reader->input_offset();
  if (!threaded) return;
  try {
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  } catch (const std::system_error&) {
    // No thread to be had: read on the caller's thread instead.
  }
}

CaptureReadAhead::~CaptureReadAhead() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->free_cv.notify_all();
  impl_->thread.join();
}

Result<const CaptureRecord*> CaptureReadAhead::next() {
  if (impl_->thread.joinable()) return impl_->next();
  Result<bool> r = impl_->reader->next(impl_->unthreaded);
  if (!r) return r.error();
  return *r ? &impl_->unthreaded : nullptr;
}

uint64_t CaptureReadAhead::offset() const {
  if (!impl_->thread.joinable()) return impl_->reader->offset();
  return impl_->offset;
}

uint64_t CaptureReadAhead::input_offset() const {
  if (!impl_->thread.joinable()) return impl_->reader->input_offset();
  return impl_->input_offset;
}

}  // namespace pgwire
