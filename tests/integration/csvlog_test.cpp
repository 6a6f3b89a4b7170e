// pgproxy --log-format csvlog against a real server and real clients (psql:
// simple queries, one failing; pgbench -M extended: parameters), read by the
// two consumers it is for: pgBadger (-f csv, its JSON report) must count the
// statements, the errors and the top normalized queries as
// `pgdump-log --stats` counts them on the capture; Debian's pgreplay (-c)
// must replay it against the same server without a parse error. And the
// live csvlog is byte for byte what pgdump-log --format csvlog writes from
// the capture.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
using pt::ProxyProcess;

namespace {

class CsvlogTest : public pt::SharedServerTest<CsvlogTest> {
 public:
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

// Debian's interpreter and pgBadger's JSON report (JSON::XS); the numbers of
// both reports as "key value" and "query COUNT TEXT" lines. Queries are
// compared in one normalization of both: lower case, every constant and
// placeholder a '?', a list of them one '?', no final ';'.
constexpr const char* kDebianPython = "/usr/bin/python3";
constexpr const char* kSummary = R"(
import json, re, sys
def norm(q):
    q = q.lower().strip().rstrip(";").strip()
    q = re.sub(r"'(?:[^']|'')*'", "?", q)
    q = re.sub(r"\$\d+", "?", q)
    q = re.sub(r"\b\d+\b", "?", q)
    q = re.sub(r"\?(\s*,\s*(\?|\.\.\.))+", "?", q)  # lists: pgdump-log writes "?, ..."
    return re.sub(r"\s+", " ", q)
kind, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
if kind == "pgbadger":
    queries = d.get("normalyzed_info", {}).get("postgres", {})
    print("statements", sum(v["count"] for v in queries.values()))
    print("errors", d["overall_stat"].get("errors_number", 0))
    for q, v in queries.items():
        print("query", v["count"], norm(q))
else:
    by = d["statements"]["by_outcome"]
    print("statements", by.get("ok", 0) + by.get("error", 0) + by.get("unknown", 0))
    print("errors", by.get("error", 0))
    for s in d["top_by_count"]:
        print("query", s["count"], norm(s["statement"]))
)";

struct Summary {
  std::map<std::string, long> numbers;
  std::map<std::string, long> queries;  // normalized text -> count
  std::vector<std::string> order;       // queries as listed
};

Summary summarize(const std::string& kind, const std::string& path) {
  pt::CommandResult r = pt::run_command({kDebianPython, "-c", kSummary, kind, path});
  EXPECT_TRUE(r.ok()) << r.describe();
  Summary s;
  std::istringstream in(r.out);
  std::string key;
  while (in >> key) {
    long n = 0;
    in >> n;
    if (key == "query") {
      std::string text;
      std::getline(in, text);
      text.erase(0, text.find_first_not_of(' '));
      s.queries[text] += n;
      s.order.push_back(text);
    } else {
      s.numbers[key] = n;
    }
  }
  return s;
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST_F(CsvlogTest, PgbadgerAndPgreplayReadPgproxysCsvlog) {
  ProxyProcess proxy(pg(), {"--log-format", "csvlog", "--capture-backend"});
  pt::CommandResult r = proxy.psql(
      pg(),
      {"-c", "SELECT 'it''s \"quoted\"' AS x, 1", "-c", "SELECT 1,\n2 AS two", "-c", "SELECT 1/0", "-c", "SELECT 3"},
      {{"PGAPPNAME", "csvlog-test"}});
  EXPECT_NE(r.err.find("division by zero"), std::string::npos) << r.describe();
  // -N (no updates of pgbench_tellers and pgbench_branches): the two
  // sessions do not wait on each other's row locks, on which Debian's
  // pgreplay may stall (docs/csvlog.md); with tpcb-like it did, in CI under
  // ASan ("Execution is 1 minute behind schedule", then the 120 s limit).
  r = proxy.client(pg(), "pgbench", {"-n", "-N", "-M", "extended", "-c", "2", "-t", "10"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  struct stat st {};
  ASSERT_EQ(stat(proxy.sql_log().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string log = pt::read_text_file(proxy.sql_log());
  // What the server itself would have written (corpus/csvlog has its records).
  EXPECT_EQ(count_of(log, ",LOG,00000,\"connection authorized: user="), 4) << log;  // psql, pgbench x 3
  EXPECT_EQ(count_of(log, ",LOG,00000,\"disconnection: session time: "), 4) << log;
  EXPECT_EQ(count_of(log, ",LOG,00000,\"statement: SELECT 'it''s \"\"quoted\"\"' AS x, 1\","), 1) << log;
  EXPECT_EQ(count_of(log, ",LOG,00000,\"statement: SELECT 1,\n2 AS two\","), 1) << log;
  EXPECT_EQ(count_of(log, ",ERROR,22012,\"division by zero\","), 1) << log;
  EXPECT_EQ(count_of(log,
                     "\"execute <unnamed>: UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = "
                     "$2;\",\"parameters: $1 = '"),
            20)
      << log;
  EXPECT_EQ(count_of(log, "\"csvlog-test\",\"client backend\",,\n"), 9)
      << log;  // 4 statements, 4 durations/errors, 1 end

  // Live and offline: the same bytes.
  pt::CommandResult dump =
      pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--format", "csvlog", proxy.capture()});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  EXPECT_EQ(dump.out, log);

  // pgBadger's report against pgdump-log's statistics of the capture.
  const std::string badger_json = proxy.dir() + "/pgbadger.json";
  // --pid-dir: pgBadger refuses to start while /tmp/pgbadger.pid exists (exit 3), so two runs at once would fail.
  r = pt::run_command({"pgbadger", "-q", "--pid-dir", proxy.dir(), "-f", "csv", "-o", badger_json, proxy.sql_log()});
  ASSERT_TRUE(r.ok()) << r.describe();
  const std::string stats_json = proxy.dir() + "/stats.json";
  r = pt::run_command({"sh", "-c", "\"$0\" --no-progress --stats --stats-format json --top 5 \"$1\" > \"$2\"",
                       pt::tool_path("pgdump-log"), proxy.capture(), stats_json});
  ASSERT_TRUE(r.ok()) << r.describe();
  const Summary badger = summarize("pgbadger", badger_json);
  const Summary ours = summarize("stats", stats_json);
  // 4 psql statements, pgbench's 2 of set-up, 2 x 10 transactions of 5.
  EXPECT_EQ(ours.numbers.at("statements"), 4 + 2 + 100);
  EXPECT_EQ(badger.numbers.at("statements"), ours.numbers.at("statements"));
  EXPECT_EQ(ours.numbers.at("errors"), 1);
  EXPECT_EQ(badger.numbers.at("errors"), ours.numbers.at("errors"));
  ASSERT_EQ(ours.order.size(), 5u);
  for (const std::string& q : ours.order) {
    auto it = badger.queries.find(q);
    ASSERT_NE(it, badger.queries.end()) << "pgBadger has no " << q;
    EXPECT_EQ(it->second, ours.queries.at(q)) << q;
  }

  // pgreplay replays it against the same server (its users and databases exist).
  r = pt::run_command(
      {"/usr/bin/pgreplay", "-c", "-j", "-h", pg().host(), "-p", std::to_string(pg().port()), proxy.sql_log()},
      pg().client_env(), std::chrono::seconds(120));
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.err, "") << "pgreplay said: " << r.err;
  EXPECT_NE(r.out.find("Total SQL statements processed: 106\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Simple SQL statements processed: 6\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Parametrized SQL statements processed: 100\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SQL statements executed: 106\n"), std::string::npos) << r.out;
}

// --format csvlog is --format sql --log-format csvlog; pgproxy --check-config
// knows the value.
TEST_F(CsvlogTest, OptionsKnowCsvlog) {
  ProxyProcess proxy(pg(), {"--log-format", "csvlog", "--capture-backend"});
  pt::CommandResult r = proxy.psql(pg(), {"-c", "SELECT 42"});
  ASSERT_TRUE(r.ok()) << r.describe();
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  pt::CommandResult a =
      pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--format", "csvlog", proxy.capture()});
  pt::CommandResult b = pt::run_command(
      {pt::tool_path("pgdump-log"), "--no-progress", "--format", "sql", "--log-format", "csvlog", proxy.capture()});
  ASSERT_TRUE(a.ok() && b.ok()) << a.describe() << b.describe();
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out.find("\"statement: SELECT 42\""), std::string::npos) << a.out;

  r = pt::run_command({pt::tool_path("pgproxy"), "--check-config", "--listen", "127.0.0.1:0", "--upstream",
                       "127.0.0.1:5432", "--sql-log", proxy.dir() + "/x.csv", "--log-format", "csvlog"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("(csvlog)"), std::string::npos) << r.out;
}

}  // namespace
