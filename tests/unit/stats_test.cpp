#include "pgwire/stats.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace pgwire {
namespace {

TEST(LatencyHistogram, PercentilesWithinBucketPrecision) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(int64_t{i} * 1000000);  // 1..1000 ms
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.max_ns(), 1000000000);
  auto near = [](int64_t got, int64_t want) { return got >= want && got <= want * 113 / 100; };
  EXPECT_TRUE(near(h.percentile_ns(50), 500000000)) << h.percentile_ns(50);
  EXPECT_TRUE(near(h.percentile_ns(99), 990000000)) << h.percentile_ns(99);
  EXPECT_EQ(h.percentile_ns(100), 1000000000);
}

TEST(LatencyHistogram, EmptyAndTiny) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile_ns(50), 0);
  h.record(10);  // below 1 µs
  EXPECT_EQ(h.percentile_ns(50), 10);
}

TEST(StatementStats, GroupsByNormalizedTextAndRanks) {
  StatementStats s(3);
  s.add("SELECT 1", 1000000, false, 1);
  s.add("SELECT 2", 3000000, false, 1);
  s.add("UPDATE t SET x = 1", 50000000, true, 0);
  s.add("DELETE FROM a", -1, false, 0);
  s.add("DELETE FROM b", -1, false, 0);  // fourth distinct text: "<other>"
  auto by_count = s.top_by_count(10);
  ASSERT_EQ(by_count.size(), 4u);
  EXPECT_EQ(by_count[0]->text, "SELECT ?");
  EXPECT_EQ(by_count[0]->count, 2u);
  EXPECT_EQ(by_count[3]->text, "UPDATE t SET x = ?");  // ties on count=1 sort by text
  EXPECT_EQ(by_count[1]->text, "<other>");
  EXPECT_EQ(by_count[2]->text, "DELETE FROM a");
  auto by_time = s.top_by_time(1);
  ASSERT_EQ(by_time.size(), 1u);
  EXPECT_EQ(by_time[0]->text, "UPDATE t SET x = ?");
  EXPECT_EQ(by_time[0]->errors, 1u);
  EXPECT_EQ(s.overall().count(), 3u);
  EXPECT_EQ(s.distinct(), 4u);  // three texts and "<other>"
}

uint64_t total_statements(const std::vector<StatementTimeline::Bucket>& buckets) {
  uint64_t n = 0;
  for (const auto& b : buckets) n += b.statements;
  return n;
}

TEST(StatementTimeline, StartsFineAndAlignsOnTheWidth) {
  StatementTimeline t(100);
  EXPECT_TRUE(t.empty());
  t.add(1'000'000'500, 2'000'000, false);  // 1 s + 500 ns after the epoch
  EXPECT_EQ(t.width_ns(), 1000);
  EXPECT_EQ(t.start_ns(), 1'000'000'000);
  t.add(1'000'050'000, -1, true);  // 50 µs later: 51 buckets of 1 µs
  ASSERT_EQ(t.buckets().size(), 51u);
  EXPECT_EQ(t.buckets().back().statements, 1u);
  EXPECT_EQ(t.buckets().back().errors, 1u);
  EXPECT_EQ(t.buckets().back().latency.count(), 0u);  // duration unknown
  EXPECT_EQ(t.buckets().front().latency.count(), 1u);
}

TEST(StatementTimeline, GrowsUpTheLadderWithoutLosingAStatement) {
  StatementTimeline t(1200);
  const int64_t day = int64_t{86400} * 1'000'000'000;
  const int64_t t0 = 1'764'298'800'000'000'000;  // a midnight-aligned day would hide alignment bugs: 03:00 UTC
  uint64_t added = 0, errors = 0;
  std::vector<int64_t> widths;
  for (int64_t ts = t0; ts < t0 + day; ts += 7'919'000'123) {  // every ~8 s, odd offsets
    t.add(ts, 1'000'000, added % 10 == 0);
    errors += added % 10 == 0 ? 1 : 0;
    ++added;
    EXPECT_LE(t.buckets().size(), 1200u);
    if (widths.empty() || widths.back() != t.width_ns()) widths.push_back(t.width_ns());
  }
  t.add(t0 - 5'000'000'000, -1, false);  // an earlier start, seen late
  ++added;
  EXPECT_EQ(t.width_ns(), int64_t{120} * 1'000'000'000);  // a day in 2-minute buckets: 720 of them
  EXPECT_EQ(t.start_ns() % t.width_ns(), 0);
  EXPECT_LE(t.start_ns(), t0 - 5'000'000'000);
  EXPECT_GE(t.end_ns(), t0 + day - 8'000'000'000);
  EXPECT_EQ(total_statements(t.buckets()), added);
  uint64_t e = 0, known = 0;
  for (const auto& b : t.buckets()) {
    e += b.errors;
    known += b.latency.count();
  }
  EXPECT_EQ(e, errors);
  EXPECT_EQ(known, added - 1);
  for (size_t i = 1; i < widths.size(); ++i) EXPECT_EQ(widths[i] % widths[i - 1], 0) << widths[i];

  StatementTimeline::Series s = t.series(600);
  EXPECT_LE(s.buckets.size(), 600u);
  EXPECT_GE(s.buckets.size(), 300u);
  EXPECT_EQ(s.width_ns, 2 * t.width_ns());
  EXPECT_EQ(s.start_ns, t.start_ns());
  EXPECT_EQ(total_statements(s.buckets), added);
  EXPECT_EQ(t.series(5000).buckets.size(), t.buckets().size());
}

TEST(StatementTimeline, CoverExtendsWithoutCountingAndHostileTimesAreClamped) {
  StatementTimeline t(10);
  t.cover(0);
  t.cover(-5);
  t.cover(INT64_MAX);
  t.add(INT64_MIN, 5, false);
  EXPECT_LE(t.buckets().size(), 10u);
  EXPECT_EQ(total_statements(t.buckets()), 1u);
  EXPECT_EQ(t.buckets().front().statements, 1u);
  StatementTimeline one(1);
  one.add(1000, 1, false);
  one.add(3'000'000'000'000'000'000, 1, false);
  EXPECT_EQ(one.buckets().size(), 1u);
  EXPECT_EQ(one.buckets()[0].statements, 2u);
}

}  // namespace
}  // namespace pgwire
