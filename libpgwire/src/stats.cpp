#include "pgwire/stats.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>

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

void StatementStats::add(std::string_view sql, int64_t duration_ns, bool error, uint64_t rows) {
  StatementAggregate& a = slot(sql);
  ++a.count;
  a.errors += error ? 1 : 0;
  a.rows += rows;
  if (duration_ns >= 0) {
    a.latency.record(duration_ns);
    overall_.record(duration_ns);
  }
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

}  // namespace pgwire
