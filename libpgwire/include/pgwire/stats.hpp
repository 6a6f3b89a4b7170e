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
  // `duration_ns` < 0 when unknown. Returns the statement's aggregate, which
  // stays at the same address for the life of this object (callers may key
  // their own per-statement data on it, e.g. pgdump-log's examples).
  const StatementAggregate& add(std::string_view sql, int64_t duration_ns, bool error, uint64_t rows);
  // Sorted by count (desc) or by total time (desc), at most n.
  std::vector<const StatementAggregate*> top_by_count(size_t n) const;
  std::vector<const StatementAggregate*> top_by_time(size_t n) const;
  const LatencyHistogram& overall() const { return overall_; }
  size_t distinct() const { return by_text_.size(); }
  // The aggregate of a normalized text (StatementAggregate::text, "<other>"
  // included); nullptr when there is none. For joining two StatementStats,
  // as pgreplay's report does with the capture's and the replay's.
  const StatementAggregate* find(const std::string& normalized_text) const;

 private:
  StatementAggregate& slot(std::string_view sql);
  size_t max_;
  std::unordered_map<std::string, StatementAggregate> by_text_;
  LatencyHistogram overall_;
};

// Statements over time in bounded memory: counts, errors and latencies in at
// most `max_buckets` consecutive buckets of one width, aligned on multiples of
// the width since the epoch. The width starts at 1 µs and, when a timestamp
// would need more buckets, steps up a ladder (1, 2, 10, 20, 100, 200 µs, the
// same in ms, 1, 2, 10, 20 s, 1, 2, 10, 20 min, 1, 2, 6, 12 h, 1 day, then
// doubling) in which each width is a multiple of the one before, so buckets
// merge exactly and no statement is ever dropped. A step is at most 5 times
// the one before, so after any growth at least max_buckets / 5 buckets are in
// use. About 1 KiB per bucket (a LatencyHistogram each). Timestamps before
// 1970 or after 2096 (a damaged capture) count at those ends.
class StatementTimeline {
 public:
  struct Bucket {
    uint64_t statements = 0;
    uint64_t errors = 0;
    LatencyHistogram latency;  // the statements with a known duration
    void merge(const Bucket& other);
  };
  // Buckets of one width from start_ns on, as series() returns them.
  struct Series {
    int64_t start_ns = 0;
    int64_t width_ns = 0;
    std::vector<Bucket> buckets;
  };

  explicit StatementTimeline(size_t max_buckets = 1200) : max_(max_buckets < 1 ? 1 : max_buckets) {}
  // A statement that started at `ts_ns`; `duration_ns` < 0 when unknown.
  void add(int64_t ts_ns, int64_t duration_ns, bool error);
  // Makes the buckets reach `ts_ns` without counting anything there (session
  // opens and closes, so idle stretches of a capture show as zero).
  void cover(int64_t ts_ns);

  bool empty() const { return buckets_.empty(); }
  int64_t width_ns() const { return width_; }
  int64_t start_ns() const { return first_ * width_; }
  int64_t end_ns() const { return (first_ + static_cast<int64_t>(buckets_.size())) * width_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // The same buckets merged k consecutive ones at a time, with k the smallest
  // that leaves at most `max_points` (at least 1) of them.
  Series series(size_t max_points) const;

 private:
  Bucket& slot(int64_t ts_ns);
  void regroup(int64_t new_width);
  size_t max_;
  int64_t width_ = 1000;  // the first step of the ladder
  int64_t first_ = 0;     // index of buckets_[0] since the epoch, in widths
  std::vector<Bucket> buckets_;
};

}  // namespace pgwire
