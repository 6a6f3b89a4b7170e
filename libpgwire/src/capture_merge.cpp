#include "pgwire/capture_merge.hpp"

#include <sys/stat.h>

namespace pgwire {

void OwnedRecord::assign(const CaptureRecord& r) {
  rec = r;
  client.assign(r.client);
  server.assign(r.server);
  reason.assign(r.reason);
  key.assign(r.key);
  data.assign(r.data.begin(), r.data.end());
  value.assign(r.value.begin(), r.value.end());
}

const CaptureRecord& OwnedRecord::view() {
  rec.client = client;
  rec.server = server;
  rec.reason = reason;
  rec.key = key;
  rec.data = Bytes{data.data(), data.size()};
  rec.value = Bytes{value.data(), value.size()};
  return rec;
}

std::vector<std::string> MergedReader::open(const std::vector<std::string>& paths, bool read_ahead) {
  std::vector<std::string> errors;
  for (const std::string& p : paths) {
    auto r = CaptureReader::open(p);
    if (!r) {
      if (r.error().code == Errc::kIo) {
        errors.push_back(p + ": " + r.error().message);
      } else {
        // Not a capture, or a header we cannot read: that is damage, reported the same way.
        damage_.push_back({p, r.error()});
      }
      continue;
    }
    struct stat st {};
    const bool regular = p != "-" && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    if (regular) total_size_ += static_cast<uint64_t>(st.st_size);
    Input in;
    if (read_ahead && regular) {
      in.ahead = std::make_unique<CaptureReadAhead>(std::move(r).value(), true);
    } else {
      in.reader = std::move(r).value();
    }
    in.path = p;
    inputs_.push_back(std::move(in));
  }
  for (Input& in : inputs_) advance(in);
  return errors;
}

Result<const CaptureRecord*> MergedReader::read(Input& in) {
  if (in.ahead) return in.ahead->next();
  Result<bool> r = in.reader->next(in.rec);
  if (!r) return r.error();
  return *r ? &in.rec : nullptr;
}

uint64_t MergedReader::offset(const Input& in) { return in.ahead ? in.ahead->offset() : in.reader->offset(); }

void MergedReader::advance(Input& in) {
  in.has_head = false;
  if (in.done) return;
  auto r = read(in);
  if (!r) {
    damage_.push_back({in.path, r.error()});
    in.done = true;
    return;
  }
  if (!*r) {
    in.done = true;
    return;
  }
  in.head.assign(**r);
  in.has_head = true;
}

const CaptureRecord* MergedReader::next() {
  if (inputs_.size() == 1) {
    // One file: no ordering to do, so no copy either; the record's views stay
    // in the reader's buffer until the next call.
    Input& in = inputs_[0];
    if (in.has_head) {  // the record read ahead by open()
      in.has_head = false;
      std::swap(current_, in.head);
      current_file_ = in.path;
      return &current_.view();
    }
    if (in.done) return nullptr;
    if (!in.ahead) {
      // Straight from the reader: the common case, spared a layer.
      Result<bool> r = in.reader->next(in.rec);
      if (r && *r) return &in.rec;
      if (!r) damage_.push_back({in.path, r.error()});
      in.done = true;
      return nullptr;
    }
    auto r = in.ahead->next();
    if (!r) {
      damage_.push_back({in.path, r.error()});
      in.done = true;
      return nullptr;
    }
    if (!*r) in.done = true;
    return *r;
  }
  Input* best = nullptr;
  for (Input& in : inputs_) {
    if (!in.has_head) continue;
    if (!best || in.head.rec.ts_ns < best->head.rec.ts_ns) best = &in;
  }
  if (!best) return nullptr;
  std::swap(current_, best->head);
  current_file_ = best->path;
  const size_t file = static_cast<size_t>(best - inputs_.data());
  advance(*best);
  const CaptureRecord& rec = current_.view();
  if (inputs_.size() > 1) {
    current_.rec.session_id = session_id(file, rec.session_id, rec.type == CaptureRecordType::kSessionClose);
  }
  return &current_.rec;
}

uint64_t MergedReader::session_id(size_t file, uint64_t id, bool closing) {
  auto key = std::make_pair(file, id);
  auto it = renumbered_.find(key);
  if (it == renumbered_.end()) it = renumbered_.emplace(key, next_session_++).first;
  uint64_t mapped = it->second;
  if (closing) renumbered_.erase(it);
  return mapped;
}

uint64_t MergedReader::consumed() const {
  uint64_t n = 0;
  for (const Input& in : inputs_) n += offset(in);
  return n;
}

}  // namespace pgwire
