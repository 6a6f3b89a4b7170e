// A CaptureReader read on a thread of its own: reading, checksumming and
// parsing records happen there, a few blocks ahead of the caller, while the
// caller decodes the records it already has. pgdump-log spends about a third
// of its time in the reader, so on two cores this is that much less wall time.
#pragma once

#include <cstdint>
#include <memory>

#include "pgwire/capture.hpp"

namespace pgwire {

class CaptureReadAhead {
 public:
  // With `threaded`, starts the thread (if it cannot be started, or without
  // `threaded`, records are read on the caller's thread as by the reader
  // itself). Only for inputs whose reads do not wait for a writer (regular
  // files): the thread hands records over a block at a time, so on a live
  // pipe the caller would wait for a block to fill.
  CaptureReadAhead(std::unique_ptr<CaptureReader> reader, bool threaded);
  ~CaptureReadAhead();  // stops and joins the thread
  CaptureReadAhead(const CaptureReadAhead&) = delete;
  CaptureReadAhead& operator=(const CaptureReadAhead&) = delete;

  // What CaptureReader::next returns, in the same order: every good record,
  // then the clean end (nullptr) or the error, again on every later call.
  // The record and its views are valid until the next call. Memory is
  // bounded: a few blocks of copied records, each about 256 KiB (or one
  // record, if larger).
  Result<const CaptureRecord*> next();
  // As CaptureReader::offset(): at the caller's position, not the thread's.
  uint64_t offset() const;
  // As CaptureReader::input_offset(), at the caller's position too.
  uint64_t input_offset() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgwire
