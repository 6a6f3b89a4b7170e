#include "out_buf.hpp"

namespace pgproxy {

void OutBuf::append(pgwire::Bytes b) {
  if (b.empty()) return;
  if (head_ > 0 && head_ >= data_.size() / 2) {  // compact before growing
    data_.erase(data_.begin(), data_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
  data_.insert(data_.end(), b.begin(), b.end());
  if (size() >= kHighWater) full_ = true;
}

void OutBuf::consume(size_t n) {
  head_ += n;
  if (head_ >= data_.size()) {
    head_ = 0;
    data_.clear();
    if (data_.capacity() > kKeepCapacity) std::vector<std::byte>().swap(data_);
  }
  if (size() <= kLowWater) full_ = false;
}

void OutBuf::release() {
  head_ = 0;
  full_ = false;
  std::vector<std::byte>().swap(data_);
}

}  // namespace pgproxy
