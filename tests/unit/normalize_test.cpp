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

// The fingerprint is FNV-1a 64 of the normalized text. The expected values were computed outside
// this code (a few lines of Python over the normalized texts written here by hand, as
// docs/fingerprints.md gives them); "" and "a" are FNV-1a's published test vectors.
TEST(Fingerprint, Fnv1a64OfTheNormalizedText) {
  EXPECT_EQ(pgwire::fingerprint_hex(pgwire::fingerprint_of_normalized("")), "cbf29ce484222325");
  EXPECT_EQ(pgwire::fingerprint_hex(pgwire::fingerprint_of_normalized("a")), "af63dc4c8601ec8c");
  EXPECT_EQ(pgwire::fingerprint_hex(0x1a), "000000000000001a");
  struct Example {
    const char* sql;
    const char* normalized;
    const char* fingerprint;
  };
  for (const Example& e : {
           Example{"SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?", "813e1ea2c1fbf511"},
           Example{"select  *  from t\n  where id=$1 -- by id", "select * from t where id=?", "38666bb30231a74f"},
           Example{"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", "INSERT INTO t (a, b) VALUES (?, ...), (?, ...)",
                   "2b0578f2f3c868d6"},
           Example{"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
                   "UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?", "a8b6284bbd25d386"},
       }) {
    EXPECT_EQ(pgwire::normalize_sql(e.sql), e.normalized) << e.sql;
    EXPECT_EQ(pgwire::fingerprint_hex(pgwire::statement_fingerprint(e.sql)), e.fingerprint) << e.sql;
  }
  // Values, comments and spacing do not change it; keywords' case does.
  EXPECT_EQ(pgwire::statement_fingerprint("SELECT * FROM t WHERE id = 7 /* again */"),
            pgwire::statement_fingerprint("SELECT  * FROM t WHERE id = 'x'"));
  EXPECT_NE(pgwire::statement_fingerprint("SELECT 1"), pgwire::statement_fingerprint("select 1"));
}
