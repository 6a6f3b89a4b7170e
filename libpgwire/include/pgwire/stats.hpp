// Latency histograms and per-statement aggregates, in bounded memory, for
// pgdump-log --stats and pgreplay's report.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgwire {

// Log-linear histogram of durations in nanoseconds: 8 buckets per power of
// two from 1 µs to about 70 minutes, so a percentile is exact to 9%. Fixed
// size whatever the number of samples.
class LatencyHistogram {
 public:
  void record(int64_t ns);
  void merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  int64_t max_ns() const { return max_; }
  int64_t sum_ns() const { return sum_; }
  // The upper bound of the bucket holding the p-th percentile (0 < p <= 100),
  // never above max_ns(); 0 when empty.
  int64_t percentile_ns(double p) const;

 private:
  static constexpr int kSubBuckets = 8;
  static constexpr int kBuckets = 32 * kSubBuckets;
  static int bucket_of(int64_t ns);
  static int64_t upper_bound_ns(int bucket);
  std::array<uint32_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t max_ = 0;
};

struct StatementAggregate {
  std::string text;  // normalized
  // fingerprint_of_normalized(text); 0 for the "<other>" bucket (many texts).
  uint64_t fingerprint = 0;
  uint64_t count = 0;
  uint64_t errors = 0;
  uint64_t rows = 0;
  LatencyHistogram latency;  // only statements with a known duration
};

// Aggregates by normalized text; past `max_statements` distinct texts, the
// rest are counted under "<other>" so memory stays bounded.
class StatementStats {
 public:
  explicit StatementStats(size_t max_statements = 5000) : max_(max_statements) {}
  // `duration_ns` < 0 when unknown.
  void add(std::string_view sql, int64_t duration_ns, bool error, uint64_t rows);
  // Sorted by count (desc) or by total time (desc), at most n.
  std::vector<const StatementAggregate*> top_by_count(size_t n) const;
  std::vector<const StatementAggregate*> top_by_time(size_t n) const;
  const LatencyHistogram& overall() const { return overall_; }
  size_t distinct() const { return by_text_.size(); }

 private:
  StatementAggregate& slot(std::string_view sql);
  size_t max_;
  std::unordered_map<std::string, StatementAggregate> by_text_;
  LatencyHistogram overall_;
};

}  // namespace pgwire
