#include "pgwire/stats.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pgwire
