#include "pgwire/stats.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "pgwire/normalize.hpp"

namespace pgwire {

int LatencyHistogram::bucket_of(int64_t ns) {
  int64_t us = ns / 1000;
  if (us < 1) return 0;
  auto u = static_cast<uint64_t>(us);
  int exp = 63 - std::countl_zero(u);  // floor(log2(us))
  // The next 3 bits below the leading one choose the sub-bucket.
  int sub = exp >= 3 ? static_cast<int>((u >> (exp - 3)) & 7) : static_cast<int>((u << (3 - exp)) & 7);
  int b = exp * kSubBuckets + sub + 1;
  return std::min(b, kBuckets - 1);
}

int64_t LatencyHistogram::upper_bound_ns(int bucket) {
  if (bucket == 0) return 1000;
  int exp = (bucket - 1) / kSubBuckets;
  int sub = (bucket - 1) % kSubBuckets;
  double us = std::ldexp(1.0 + (sub + 1) / 8.0, exp);
  return static_cast<int64_t>(us * 1000);
}

void LatencyHistogram::record(int64_t ns) {
  if (ns < 0) ns = 0;
  ++buckets_[static_cast<size_t>(bucket_of(ns))];
  ++count_;
  sum_ += ns;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& o) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
}

int64_t LatencyHistogram::percentile_ns(double p) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<size_t>(b)];
    if (seen >= rank) return std::min(upper_bound_ns(b), max_);
  }
  return max_;
}

StatementAggregate& StatementStats::slot(std::string_view sql) {
  std::string key = normalize_sql(sql);
  auto it = by_text_.find(key);
  if (it != by_text_.end()) return it->second;
  if (by_text_.size() >= max_) key = "<other>";
  StatementAggregate& a = by_text_[key];
  if (a.text.empty()) {
    a.text = key;
    if (key != "<other>") a.fingerprint = fingerprint_of_normalized(key);
  }
  return a;
}

const StatementAggregate* StatementStats::find(const std::string& normalized_text) const {
  auto it = by_text_.find(normalized_text);
  return it == by_text_.end() ? nullptr : &it->second;
}

const StatementAggregate& StatementStats::add(std::string_view sql, int64_t duration_ns, bool error, uint64_t rows) {
  StatementAggregate& a = slot(sql);
  ++a.count;
  a.errors += error ? 1 : 0;
  a.rows += rows;
  if (duration_ns >= 0) {
    a.latency.record(duration_ns);
    overall_.record(duration_ns);
  }
  return a;
}

namespace {
template <class Less>
std::vector<const StatementAggregate*> top(const std::unordered_map<std::string, StatementAggregate>& m, size_t n,
                                           Less less) {
  std::vector<const StatementAggregate*> v;
  v.reserve(m.size());
  for (const auto& [k, a] : m) v.push_back(&a);
  auto cmp = [&](const StatementAggregate* a, const StatementAggregate* b) {
    if (less(*a, *b) != less(*b, *a)) return less(*b, *a);
    return a->text < b->text;  // deterministic order for ties
  };
  size_t k = std::min(n, v.size());
  std::partial_sort(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end(), cmp);
  v.resize(k);
  return v;
}
}  // namespace

std::vector<const StatementAggregate*> StatementStats::top_by_count(size_t n) const {
  return top(by_text_, n, [](const StatementAggregate& a, const StatementAggregate& b) { return a.count < b.count; });
}
std::vector<const StatementAggregate*> StatementStats::top_by_time(size_t n) const {
  return top(by_text_, n, [](const StatementAggregate& a, const StatementAggregate& b) {
    return a.latency.sum_ns() < b.latency.sum_ns();
  });
}

namespace {

constexpr int64_t kUs = 1000, kMs = 1000 * kUs, kSec = 1000 * kMs, kMin = 60 * kSec, kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
// Each a multiple of the one before (StatementTimeline's comment).
constexpr std::array<int64_t, 25> kWidthLadder = {
    kUs,       2 * kUs,   10 * kUs,  20 * kUs,  100 * kUs, 200 * kUs,  kMs,       2 * kMs, 10 * kMs,
    20 * kMs,  100 * kMs, 200 * kMs, kSec,      2 * kSec,  10 * kSec,  20 * kSec, kMin,    2 * kMin,
    10 * kMin, 20 * kMin, kHour,     2 * kHour, 6 * kHour, 12 * kHour, kDay};

// Timestamps are clamped to 1970..2096 so that no bucket arithmetic can
// overflow, whatever a damaged or hostile capture says.
constexpr int64_t kLatestNs = 4'000'000'000'000'000'000;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t next_width(int64_t width) {
  for (int64_t w : kWidthLadder) {
    if (w > width) return w;
  }
  // Past a day: doubling, until one bucket spans any two int64 timestamps.
  return width > INT64_MAX / 2 ? width : width * 2;
}

}  // namespace

void StatementTimeline::Bucket::merge(const Bucket& o) {
  statements += o.statements;
  errors += o.errors;
  latency.merge(o.latency);
}

void StatementTimeline::add(int64_t ts_ns, int64_t duration_ns, bool error) {
  Bucket& b = slot(ts_ns);
  ++b.statements;
  b.errors += error ? 1 : 0;
  if (duration_ns >= 0) b.latency.record(duration_ns);
}

void StatementTimeline::cover(int64_t ts_ns) { slot(ts_ns); }

StatementTimeline::Bucket& StatementTimeline::slot(int64_t ts) {
  ts = std::clamp<int64_t>(ts, 0, kLatestNs);
  if (buckets_.empty()) {
    buckets_.reserve(max_);  // never more: the capacity is the memory bound
    first_ = floor_div(ts, width_);
    buckets_.resize(1);
    return buckets_[0];
  }
  const int64_t lo = std::min(ts, start_ns());
  const int64_t hi = std::max(ts, end_ns() - 1);
  int64_t width = width_;
  while (floor_div(hi, width) - floor_div(lo, width) + 1 > static_cast<int64_t>(max_)) {
    const int64_t next = next_width(width);
    if (next == width) break;
    width = next;
  }
  if (width != width_) regroup(width);
  const int64_t index = floor_div(ts, width_);
  if (index < first_) {
    buckets_.insert(buckets_.begin(), static_cast<size_t>(first_ - index), Bucket{});
    first_ = index;
  } else if (index >= first_ + static_cast<int64_t>(buckets_.size())) {
    buckets_.resize(static_cast<size_t>(index - first_ + 1));
  }
  return buckets_[static_cast<size_t>(index - first_)];
}

// Every old bucket lies inside one new bucket: the new width is a multiple of
// the old one and both are aligned on the epoch.
void StatementTimeline::regroup(int64_t width) {
  const int64_t first = floor_div(start_ns(), width);
  const int64_t last = floor_div(end_ns() - 1, width);
  std::vector<Bucket> merged;
  merged.reserve(max_);
  merged.resize(static_cast<size_t>(last - first + 1));
  for (size_t i = 0; i < buckets_.size(); ++i) {
    const int64_t at = floor_div((first_ + static_cast<int64_t>(i)) * width_, width) - first;
    merged[static_cast<size_t>(at)].merge(buckets_[i]);
  }
  buckets_.swap(merged);
  first_ = first;
  width_ = width;
}

StatementTimeline::Series StatementTimeline::series(size_t max_points) const {
  Series s;
  s.start_ns = start_ns();
  if (buckets_.empty()) {
    s.width_ns = width_;
    return s;
  }
  const size_t points = std::max<size_t>(max_points, 1);
  const size_t k = (buckets_.size() + points - 1) / points;
  s.width_ns = width_ * static_cast<int64_t>(k);
  s.buckets.resize((buckets_.size() + k - 1) / k);
  for (size_t i = 0; i < buckets_.size(); ++i) s.buckets[i / k].merge(buckets_[i]);
  return s;
}

}  // namespace pgwire
