// Pending bytes toward one socket of a proxied connection, with the
// backpressure thresholds the session reads by.
#pragma once

#include <cstddef>
#include <vector>

#include "pgwire/bytes.hpp"

namespace pgproxy {

// Pending bytes toward one socket. Appends at the end, consumes from the
// front; memory goes back to the allocator when it empties after a burst, so
// an idle connection holds (almost) nothing.
//
// Backpressure, with hysteresis: full() turns true when the buffer reaches
// kHighWater and false again once it has drained to kLowWater. The session
// does not read from the side that feeds a full buffer, so a buffer never
// holds more than kHighWater plus one read.
class OutBuf {
 public:
  static constexpr size_t kHighWater = size_t{256} * 1024;
  static constexpr size_t kLowWater = size_t{64} * 1024;
  // Capacity kept when the buffer empties; more is given back.
  static constexpr size_t kKeepCapacity = size_t{64} * 1024;

  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }
  size_t capacity() const { return data_.capacity(); }
  bool full() const { return full_; }
  pgwire::Bytes view() const { return {data_.data() + head_, size()}; }
  void append(pgwire::Bytes b);
  void consume(size_t n);
  void release();  // drops everything, memory included

 private:
  std::vector<std::byte> data_;
  size_t head_ = 0;
  bool full_ = false;
};

}  // namespace pgproxy
