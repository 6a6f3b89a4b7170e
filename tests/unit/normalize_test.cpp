#include "pgwire/normalize.hpp"

#include <gtest/gtest.h>

namespace pgwire {
namespace {

TEST(Normalize, LiteralsNumbersAndParametersBecomePlaceholders) {
  EXPECT_EQ(normalize_sql("SELECT abalance FROM pgbench_accounts WHERE aid = 4217;"),
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?");
  EXPECT_EQ(normalize_sql("SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?");
  EXPECT_EQ(normalize_sql("UPDATE t SET s = 'it''s', f = 1.5e-3 WHERE x = E'\\n\\''"),
            "UPDATE t SET s = ?, f = ? WHERE x = ?");
  EXPECT_EQ(normalize_sql("SELECT $$a 'b' c$$, $tag$x$tag$"), "SELECT ?, ?");
}

TEST(Normalize, WhitespaceCommentsAndIdentifiers) {
  EXPECT_EQ(normalize_sql("  SELECT\n\t*  FROM t1 -- comment\n WHERE \"Col 2\" = 3 /* a /* nested */ b */"),
            "SELECT * FROM t1 WHERE \"Col 2\" = ?");
  EXPECT_EQ(normalize_sql("select x2 from t"), "select x2 from t");
}

TEST(Normalize, PlaceholderListsCollapse) {
  EXPECT_EQ(normalize_sql("SELECT * FROM t WHERE id IN (1, 2, 3, 4)"), "SELECT * FROM t WHERE id IN (?, ...)");
  EXPECT_EQ(normalize_sql("SELECT * FROM t WHERE id IN ( 1 , 2 )"), "SELECT * FROM t WHERE id IN (?, ...)");
  EXPECT_EQ(normalize_sql("INSERT INTO t VALUES (1, 'a')"), "INSERT INTO t VALUES (?, ...)");
  EXPECT_EQ(normalize_sql("SELECT f(1)"), "SELECT f(?)");
}

TEST(Normalize, DifferentValuesSameText) {
  EXPECT_EQ(normalize_sql("UPDATE pgbench_branches SET bbalance = bbalance + -3221 WHERE bid = 1;"),
            normalize_sql("UPDATE pgbench_branches SET bbalance = bbalance + 42 WHERE bid = 7"));
}

}  // namespace
}  // namespace pgwire
