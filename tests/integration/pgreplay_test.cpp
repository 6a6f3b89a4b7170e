// pgreplay against real PostgreSQL servers: captures recorded through pgproxy
// from real clients (psql, pgbench), replayed into a copy of the database the
// clients started from. Checked: the server's own log_statement=all log shows
// the same statements in the copy, --compare finds no divergence (and exactly
// the one a changed row causes), cancels are replayed, every authentication
// method logs in, a wrong password and a server going away end cleanly with a
// report.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "html_dom.hpp"
#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A directory for captures and reports, removed at the end.
class WorkDir {
 public:
  WorkDir() {
    path_ = fs::temp_directory_path() / ("pgreplay-test-" + std::to_string(getpid()) + "-" + std::to_string(++n_));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int n_ = 0;
  fs::path path_;
};

// pgproxy in front of `pg` recording `capture` (with backend frames unless told otherwise).
pt::ProxyOptions recording(const pt::TempPostgres& pg, const std::string& capture, bool backend = true) {
  pt::ProxyOptions o;
  o.upstream = pg.host() + ":" + std::to_string(pg.port());
  o.capture = capture;
  o.sql_log = "none";
  if (backend) o.extra.push_back("--capture-backend");
  return o;
}

// pgreplay with exactly the environment given (run_command drops inherited PG* variables).
pt::CommandResult pgreplay(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                           std::chrono::milliseconds timeout = 180s) {
  std::vector<std::string> argv = {pt::tool_path("pgreplay"), "--no-progress"};
  argv.insert(argv.end(), args.begin(), args.end());
  pt::CommandOptions opts;
  opts.env = std::move(env);
  opts.timeout = timeout;
  return pt::run_command(argv, opts);
}

std::vector<std::string> target_args(const pt::TempPostgres& pg) {
  return {"-h", pg.host(), "-p", std::to_string(pg.port())};
}

// One server log line with log_line_prefix '%m [%p] %d ': "2026-11-28 04:00:36.460 UTC [123] db LOG:  ...".
// Returns false for continuation lines and anything else.
bool split_log_line(const std::string& line, std::string* db, std::string* rest) {
  size_t open = line.find(" [");
  size_t close = open == std::string::npos ? open : line.find("] ", open);
  if (close == std::string::npos) return false;
  size_t db_end = line.find(' ', close + 2);
  if (db_end == std::string::npos) return false;
  *db = line.substr(close + 2, db_end - close - 2);
  *rest = line.substr(db_end + 1);
  return true;
}

// The statements the server logged (log_statement=all) for database `db` after byte `from` of
// its log: "statement: ..." and "execute <name>: ..." lines, each with the parameters from the
// DETAIL line that follows an execute. Sorted: sessions run concurrently, so only the multiset
// is comparable.
std::vector<std::string> logged_statements(const std::string& log, size_t from, const std::string& db) {
  std::vector<std::string> out;
  std::istringstream in(log.substr(std::min(from, log.size())));
  std::string line, line_db, rest;
  bool last_was_execute = false;
  while (std::getline(in, line)) {
    if (!split_log_line(line, &line_db, &rest)) continue;
    const bool statement = rest.rfind("LOG:  statement: ", 0) == 0;
    const bool execute = rest.rfind("LOG:  execute ", 0) == 0;
    if (statement || execute) {
      last_was_execute = false;
      if (line_db != db) continue;
      out.push_back(rest.substr(6));
      last_was_execute = execute;
    } else if (last_was_execute && line_db == db && rest.rfind("DETAIL:  parameters: ", 0) == 0) {
      out.back() += " | " + rest.substr(9);
      last_was_execute = false;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string head(const std::vector<std::string>& v, size_t n = 10) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < n; ++i) s += "  " + v[i] + "\n";
  return s;
}

// The part of a report line after its label, e.g. field(out, "sessions") = "5 ok, 0 failed, 0 skipped".
std::string field(const std::string& report, const std::string& label) {
  const std::string key = "\n  " + label + " ";
  size_t at = report.find(key);
  if (at == std::string::npos) return {};
  at = report.find_first_not_of(' ', at + key.size());
  if (at == std::string::npos) return {};
  return report.substr(at, report.find('\n', at) - at);
}

// The "errors by SQLSTATE" line of `state`: "  22012   2x, 2 of 2 also failed ...".
std::string error_line(const std::string& report, const std::string& state) {
  size_t at = report.find("\n    " + state + " ");
  if (at == std::string::npos) return {};
  return report.substr(at + 1, report.find('\n', at + 1) - at - 1);
}

constexpr const char* kPsqlScript = R"(select count(*) from t;
update t set v = 'changed' where id = 3;
select v from t where id = 4;
select now();
\copy t from stdin
100	hundred
101	hundred one
\.
copy (select id from t order by id) to stdout;
select 1/0;
begin;
insert into t values (200, 'x');
commit;
prepare q(int) as select v from t where id = $1;
execute q(1);
)";

// pgbench script: a pipeline with an error in the middle.
constexpr const char* kPipelineScript = R"(\set aid random(1, 1000)
\startpipeline
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT 1/(:aid % 1);
SELECT abalance FROM pgbench_accounts WHERE aid = :aid + 1;
\endpipeline
)";

// One trust server for the tests that do not need authentication, with a
// base database (pgbench tables and a table t) copied to a source database
// the clients are recorded against, and to targets for the replays.
class PgReplayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pt::TempPostgresOptions o;
    o.settings = {{"log_statement", "all"}, {"log_line_prefix", "%m [%p] %d "}, {"lc_messages", "C"}};
    pg_ = new pt::TempPostgres(o);
    admin({"-c", "CREATE DATABASE base"});
    auto init = pt::run_command({pg_->bindir() + "/pgbench", "-i", "-q", "-s", "1", "-h", pg_->socket_dir(), "-p",
                                 std::to_string(pg_->port()), "-U", pt::TempPostgres::superuser(), "base"},
                                std::map<std::string, std::string>{}, 120s);
    ASSERT_TRUE(init.ok()) << init.describe();
    admin(
        {"-d", "base", "-c",
         "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g; "
         "GRANT ALL ON ALL TABLES IN SCHEMA public TO public"});
    admin({"-c", "CREATE DATABASE src TEMPLATE base"});
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
    delete capture_dir_;
    capture_dir_ = nullptr;
  }

  static void admin(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"-v", "ON_ERROR_STOP=1", "-q"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = pg_->run_admin_psql(a);
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  // One value, as psql -At prints it.
  static std::string query(const std::string& db, const std::string& sql) {
    auto r = pg_->run_admin_psql({"-At", "-d", db, "-c", sql});
    EXPECT_TRUE(r.ok()) << r.describe();
    std::string v = r.out;
    while (!v.empty() && v.back() == '\n') v.pop_back();
    return v;
  }
  static std::string fresh_copy(const std::string& name) {
    admin({"-c", "DROP DATABASE IF EXISTS " + name});
    admin({"-c", "CREATE DATABASE " + name + " TEMPLATE base"});
    return name;
  }

  // The recorded workload (once per test run): psql (COPY in and out, an
  // error, a transaction, PREPARE/EXECUTE), pgbench in all three modes
  // (TPC-B on one client, so the results are deterministic; select-only on
  // two), a pipeline with an error, a cancelled pg_sleep; all against
  // database src, backend frames included.
  static const std::string& main_capture() {
    if (!capture_dir_) capture_dir_ = new WorkDir;
    static std::string path;
    if (!path.empty()) return path;
    std::string cap = capture_dir_->file("main.pgwc");
    src_log_from_ = pg_->read_log().size();
    {
      pt::ProxyProcess rec(recording(*pg_, cap));
      const std::string pgbench = pg_->bindir() + "/pgbench";
      const std::string psql = pg_->bindir() + "/psql";
      auto r = rec.run(*pg_, {psql, "-X", "-d", "src"}, kPsqlScript);
      EXPECT_EQ(r.exit_code, 0) << r.describe();
      r = rec.run(*pg_, {pgbench, "-n", "-M", "simple", "-c", "1", "-t", "20", "src"});
      EXPECT_TRUE(r.ok()) << r.describe();
      r = rec.run(*pg_, {pgbench, "-n", "-M", "extended", "-c", "1", "-t", "30", "src"});
      EXPECT_TRUE(r.ok()) << r.describe();
      r = rec.run(*pg_, {pgbench, "-n", "-M", "prepared", "-S", "-c", "2", "-t", "30", "src"});
      EXPECT_TRUE(r.ok()) << r.describe();
      std::string script = capture_dir_->file("pipeline.sql");
      std::ofstream(script) << kPipelineScript;
      r = rec.run(*pg_, {pgbench, "-n", "-M", "extended", "-c", "1", "-t", "3", "-f", script, "src"});
      // pgbench aborts the client at the error: exit 2 is expected.
      EXPECT_NE(r.err.find("division by zero"), std::string::npos) << r.describe();
      // psql sends a CancelRequest on SIGINT.
      r = rec.run(*pg_, {"timeout", "-s", "INT", "1.5", psql, "-X", "-d", "src", "-c", "select pg_sleep(6)"});
      EXPECT_NE(r.err.find("canceling statement due to user request"), std::string::npos) << r.describe();
      rec.stop();
    }
    src_log_end_ = pg_->read_log().size();
    path = cap;
    return path;
  }

  static inline pt::TempPostgres* pg_ = nullptr;
  static inline WorkDir* capture_dir_ = nullptr;
  static inline size_t src_log_from_ = 0;
  static inline size_t src_log_end_ = 0;
};

TEST_F(PgReplayTest, ReplaysTheSameStatementsWithoutDivergence) {
  const std::string& cap = main_capture();
  std::string db = fresh_copy("dst_same");
  WorkDir w;
  const size_t from = pg_->read_log().size();
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "--map-database", "src=" + db, "--compare", "--ignore",
                           "now\\(\\)", "--report", w.file("report.json"), cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  EXPECT_NE(field(r.out, "sessions").find(" 0 failed"), std::string::npos) << r.out;
  // timeout(1) signals psql and its process group: psql may send one or two cancels.
  const std::string cancels = field(r.out, "cancel requests");
  EXPECT_TRUE(cancels == "1 sent, 0 skipped" || cancels == "2 sent, 0 skipped") << r.out;
  EXPECT_NE(field(r.out, "compare").find(" 0 divergences"), std::string::npos) << r.out;
  EXPECT_NE(field(r.out, "compare").find("1 ignored"), std::string::npos) << r.out;
  // Errors that also happened in the capture are said so.
  EXPECT_NE(r.out.find("22012"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("57014"), std::string::npos) << r.out;
  for (const char* state : {"22012", "57014"}) {
    // "22012        2x, 2 of 2 also failed in the capture": every one also failed there.
    std::string line = error_line(r.out, state);
    std::istringstream words(line);
    std::string code, count;
    words >> code >> count;  // "22012", "2x,"
    ASSERT_EQ(code, state) << r.out;
    const std::string n = count.substr(0, count.find('x'));
    EXPECT_NE(line.find(", " + n + " of " + n + " also failed in the capture"), std::string::npos) << line;
  }

  const std::string log = pg_->read_log();
  auto captured = logged_statements(log.substr(0, src_log_end_), src_log_from_, "src");
  auto replayed = logged_statements(log, from, db);
  ASSERT_GT(captured.size(), 100u);
  EXPECT_EQ(captured, replayed) << "captured (first):\n" << head(captured) << "replayed (first):\n" << head(replayed);
  // The cancel hit the replayed pg_sleep, not merely its end.
  EXPECT_NE(log.find(db + " ERROR:  canceling statement due to user request", from), std::string::npos);

  std::string json = pt::read_text_file(w.file("report.json"));
  EXPECT_NE(json.find("\"divergences\":0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"failed\":0"), std::string::npos) << json;
  // The report's top statements carry the fingerprints the capture's JSON lines have
  // (docs/fingerprints.md), so the two can be joined.
  pt::CommandResult dump = pt::run_command({pt::tool_path("pgdump-log"), "--no-progress", "--format", "json", cap});
  ASSERT_TRUE(dump.ok()) << dump.describe();
  std::regex fp_re("\"fingerprint\":\"([0-9a-f]{16})\"");
  int fingerprints = 0;
  for (auto it = std::sregex_iterator(json.begin(), json.end(), fp_re); it != std::sregex_iterator(); ++it) {
    ++fingerprints;
    EXPECT_NE(dump.out.find((*it)[0].str()), std::string::npos) << (*it)[0].str();
  }
  EXPECT_GT(fingerprints, 3) << json;
}

TEST_F(PgReplayTest, CompareReportsExactlyTheChangedRow) {
  const std::string& cap = main_capture();
  std::string db = fresh_copy("dst_changed");
  admin({"-d", db, "-c", "UPDATE t SET v = 'other' WHERE id = 4"});
  WorkDir w;
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "-d", db, "--compare", "--ignore", "now\\(\\)",
                           "--report", w.file("report.json"), cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 3) << r.describe() << "\n" << r.out;
  EXPECT_NE(field(r.out, "compare").find(" 1 divergences"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result rows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sql:      select v from t where id = 4;"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1x  select v from t where id = ?"), std::string::npos) << r.out;
  std::string json = pt::read_text_file(w.file("report.json"));
  EXPECT_NE(json.find("\"divergences\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("select v from t where id = 4;"), std::string::npos) << json;
}

// --report-html, loaded in a real browser: a replay into a copy that lacks
// table t, so the statements on t fail where the capture's succeeded. The
// page has the figures of --report (same run), every listed divergence with
// both outcomes, the latency table with the capture's and the replay's
// figures side by side, and the lag chart; chromium draws the same points
// and rows, runs the sorting script, and logs nothing on its console.
TEST_F(PgReplayTest, HtmlReportInChromium) {
  namespace h = pt::html;
  const std::string& cap = main_capture();
  std::string db = fresh_copy("dst_html");
  admin({"-d", db, "-c", "DROP TABLE t"});
  WorkDir w;
  const std::string page = w.file("replay.html");
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "--map-database", "src=" + db, "--compare", "--ignore",
                           "now\\(\\)", "--report", w.file("report.json"), "--report-html", page, cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 3) << r.describe() << "\n" << r.out;
  const std::string html = pt::read_text_file(page);
  const std::string json = pt::read_text_file(w.file("report.json"));
  ASSERT_FALSE(html.empty());
  struct stat st {};
  ASSERT_EQ(::stat(page.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto json_number = [&](const std::string& re) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(json, m, std::regex(re))) << re << "\n" << json;
    return m.size() > 1 ? m[1].str() : std::string();
  };

  // The overview: --report's figures.
  const auto card = h::cards(html);
  const std::string divergences = json_number("\"divergences\":([0-9]+)");
  EXPECT_EQ(card.at("divergences"), divergences);
  EXPECT_EQ(card.at("statements"), json_number("\"statements\":\\{\"total\":([0-9]+)"));
  EXPECT_EQ(card.at("compared"), json_number("\"compared\":([0-9]+)"));
  EXPECT_EQ(card.at("sessions_failed"), "0") << r.out;
  EXPECT_EQ(card.at("lag_p99_ms"), json_number("\"lag\":\\{\"count\":[0-9]+,\"p50_ms\":[0-9.]+,\"p90_ms\":[0-9.]+,"
                                               "\"p99_ms\":([0-9.]+)"));
  EXPECT_NE(card.at("captured_p50_ms"), "") << "the capture has backend frames: its latencies are known";
  EXPECT_NE(card.at("replayed_p50_ms"), "");

  // Every listed divergence, with both outcomes: the statements on t failed
  // in the replay (42P01) where the capture has their rows.
  const uint64_t n_divergences = std::stoull(divergences);
  ASSERT_GT(n_divergences, 0u);
  const auto listed = h::body_rows(h::element(html, "divergence-list"));
  EXPECT_EQ(listed.size(), std::min<uint64_t>(n_divergences, 20));
  bool missing_table = false;
  for (std::string_view row : listed) {
    const auto captured = h::tags(row, "<td class=\"outcome\" data-side=\"captured\"");
    const auto replayed = h::tags(row, "<td class=\"outcome\" data-side=\"replayed\"");
    EXPECT_EQ(captured.size(), 1u) << row;
    EXPECT_EQ(replayed.size(), 1u) << row;
    const size_t at = row.find("data-side=\"replayed\"");
    const size_t cat = row.find("data-side=\"captured\"");
    if (row.find("select v from t where id = 4;") != std::string_view::npos) {
      EXPECT_NE(row.find("ERROR 42P01 relation &quot;t&quot; does not exist", at), std::string_view::npos) << row;
      EXPECT_NE(row.substr(cat, at - cat).find("SELECT 1 (rows 1"), std::string_view::npos) << row;
      missing_table = true;
    }
  }
  EXPECT_TRUE(missing_table) << html;
  uint64_t by_statement = 0;
  const auto groups = h::body_rows(h::element(html, "divergence-statements"));
  for (std::string_view row : groups) by_statement += std::stoull(h::cell_values(row).at(0));
  EXPECT_EQ(by_statement, n_divergences);

  // Latency per statement, captured and replayed: calls on both sides, three
  // ratios; the pgbench statements ran as often in the replay as in the capture.
  const auto statements = h::body_rows(h::element(html, "statement-latency"));
  ASSERT_GE(statements.size(), 5u);
  bool pgbench_update = false;
  for (std::string_view row : statements) {
    const auto v = h::cell_values(row);  // calls c/r, errors r, p50 c/r/ratio, p99 c/r/ratio, total c/r/ratio
    ASSERT_EQ(v.size(), 12u) << row;
    if (row.find("UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?") != std::string_view::npos) {
      pgbench_update = true;
      EXPECT_EQ(v[0], v[1]) << row;
      EXPECT_EQ(v[0], "50") << row;  // pgbench -M simple 20 and -M extended 30 transactions
      EXPECT_NE(v[5], "-1") << "a p50 ratio: both latencies known\n" << row;
    }
  }
  EXPECT_TRUE(pgbench_update) << h::element(html, "statement-latency");

  // The lag chart: p50, p99 and max at each bucket where frames were sent on schedule.
  const std::string_view lag = h::element(html, "chart-lag");
  const std::string points = h::attr(lag, "data-points").value_or("");
  size_t with_frames = 0;
  for (std::string_view t : h::tags(lag, "<rect ")) with_frames += h::attr(t, "data-k") != "0" ? 1 : 0;
  EXPECT_EQ(points, std::to_string(with_frames));
  EXPECT_GT(with_frames, 10u);
  EXPECT_LE(std::stoul(h::attr(lag, "data-buckets").value()), 600u);
  EXPECT_EQ(h::sum_attr(lag, "<rect ", "data-n"), std::stoull(json_number("\"lag\":\\{\"count\":([0-9]+)")));

  // In chromium.
  h::Browser b = h::load_in_chromium(w.file(""), "file://" + page + "#sort=statement-latency.calls_replayed.asc");
  ASSERT_FALSE(b.dom.empty());
  EXPECT_TRUE(b.console.empty()) << h::joined(b.console);
  const std::string_view drawn = h::element(b.dom, "chart-lag");
  EXPECT_EQ(h::attr(drawn, "data-points"), points);
  const auto paths = h::tags(drawn, "<path ");
  EXPECT_EQ(paths.size(), 3u);
  for (std::string_view p : paths) EXPECT_EQ(std::to_string(h::path_points(p)), points) << p;
  EXPECT_EQ(h::tags(drawn, "<rect ").size(), h::tags(lag, "<rect ").size());
  for (const std::string id : {"statement-latency", "divergence-list", "divergence-statements", "errors", "failures"}) {
    const std::string_view t = h::element(b.dom, id);
    EXPECT_EQ(h::attr(t, "data-sortable"), "ready") << id << ": the script ran";
    EXPECT_EQ(h::body_rows(t).size(), h::body_rows(h::element(html, id)).size()) << id;
  }
  uint64_t previous = 0;
  for (std::string_view row : h::body_rows(h::element(b.dom, "statement-latency"))) {
    const uint64_t calls = std::stoull(h::cell_values(row).at(1));
    EXPECT_GE(calls, previous) << "sorted by the URL: replayed calls ascending";
    previous = calls;
  }
}

TEST_F(PgReplayTest, SpeedMaxReplaysEverything) {
  const std::string& cap = main_capture();
  std::string db = fresh_copy("dst_max");
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "-d", db, "--speed", "max", "--compare", "--ignore",
                           "now\\(\\)", cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("speed max"), std::string::npos) << r.out;
}

TEST_F(PgReplayTest, DryRunConnectsNowhere) {
  const std::string& cap = main_capture();
  // A port nobody listens on: a dry run must not care.
  auto r = pgreplay({"--dry-run", "-h", "127.0.0.1", "-p", std::to_string(pt::pick_free_port()), "--map-database",
                     "src=elsewhere", cap});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("session 1 connect user=" + std::string(pg_->user()) + " database=elsewhere"), std::string::npos)
      << r.out.substr(0, 2000);
  EXPECT_NE(r.out.find("query: select v from t where id = 4;"), std::string::npos);
  EXPECT_NE(r.out.find("execute: UPDATE pgbench_accounts"), std::string::npos);
  EXPECT_NE(r.out.find("cancel request for backend pid"), std::string::npos);
  EXPECT_NE(r.out.find("dry run: "), std::string::npos);
}

TEST_F(PgReplayTest, FrontendOnlyCaptureReplaysWithInferredWaits) {
  WorkDir w;
  std::string cap = w.file("fe.pgwc");
  const size_t from_src = pg_->read_log().size();
  {
    pt::ProxyProcess rec(recording(*pg_, cap, /*backend=*/false));
    auto r = rec.run(*pg_, {pg_->bindir() + "/psql", "-X", "-d", "src"}, kPsqlScript);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = rec.run(*pg_, {pg_->bindir() + "/pgbench", "-n", "-M", "prepared", "-c", "2", "-t", "20", "src"});
    EXPECT_TRUE(r.ok()) << r.describe();
    rec.stop();
  }
  const size_t end_src = pg_->read_log().size();
  std::string db = fresh_copy("dst_fe");
  const size_t from = pg_->read_log().size();
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "--map-database", "src=" + db, cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  const std::string log = pg_->read_log();
  auto captured = logged_statements(log.substr(0, end_src), from_src, "src");
  auto replayed = logged_statements(log, from, db);
  ASSERT_GT(captured.size(), 100u);
  EXPECT_EQ(captured, replayed) << "captured (first):\n" << head(captured) << "replayed (first):\n" << head(replayed);

  // Nothing to compare without backend frames: that is an error, not a pass.
  args.push_back("--compare");
  r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 2) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("compare: impossible"), std::string::npos) << r.out;
}

TEST_F(PgReplayTest, RefusedLoginFailsTheSessionCleanly) {
  const std::string& cap = main_capture();
  // A database that does not exist: every session is refused (FATAL 3D000).
  auto args = target_args(*pg_);
  args.insert(args.end(), {"-U", pt::TempPostgres::superuser(), "-d", "no_such_db", "--speed", "max", cap});
  auto r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("login refused: FATAL 3D000"), std::string::npos) << r.out;
  EXPECT_NE(field(r.out, "sessions").find("0 ok"), std::string::npos) << r.out;
  // Nobody listening.
  args = {"-h", "127.0.0.1", "-p", std::to_string(pt::pick_free_port()), "--speed", "max", cap};
  r = pgreplay(args);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("Connection refused"), std::string::npos) << r.out;
}

// A shell, container image or CI job sets PGUSER/PGDATABASE for its own psql:
// they must not send every captured session elsewhere. Recorded: TPC-B into
// database bars; replayed with PGUSER/PGDATABASE naming another role and
// database; the statements must reach bars, as the server's log and the
// history table show.
TEST_F(PgReplayTest, CapturedDatabaseWinsOverPguserAndPgdatabase) {
  admin({"-c", "DROP ROLE IF EXISTS elsewhere_role"});
  admin({"-c", "CREATE ROLE elsewhere_role LOGIN"});
  const std::string db = fresh_copy("bars");
  WorkDir w;
  const std::string cap = w.file("bars.pgwc");
  const size_t from_src = pg_->read_log().size();
  {
    pt::ProxyProcess rec(recording(*pg_, cap));
    auto r = rec.run(*pg_, {pg_->bindir() + "/pgbench", "-n", "-M", "extended", "-c", "1", "-t", "20", db});
    EXPECT_TRUE(r.ok()) << r.describe();
    rec.stop();
  }
  const size_t end_src = pg_->read_log().size();
  ASSERT_EQ(query(db, "select count(*) from pgbench_history"), "20");

  const std::map<std::string, std::string> env = {{"PGUSER", "elsewhere_role"}, {"PGDATABASE", "postgres"}};
  auto dry = pgreplay({"--dry-run", cap}, env);
  EXPECT_EQ(dry.exit_code, 0) << dry.describe();
  EXPECT_NE(dry.out.find(" connect user=" + std::string(pg_->user()) + " database=bars"), std::string::npos)
      << dry.out.substr(0, 2000);
  EXPECT_NE(dry.err.find("PGDATABASE is set (postgres) but was not applied"), std::string::npos) << dry.err;

  const size_t from = pg_->read_log().size();
  auto args = target_args(*pg_);
  args.insert(args.end(), {"--speed", "max", "--report", w.file("report.json"), cap});
  auto r = pgreplay(args, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  // pgbench's own connection that looks the scale up, and its client's.
  EXPECT_EQ(field(r.out, "sessions"), "2 ok, 0 failed, 0 skipped") << r.out;
  const std::string log = pg_->read_log();  // before the query below adds to it
  EXPECT_EQ(query(db, "select count(*) from pgbench_history"), "40");
  auto captured = logged_statements(log.substr(0, end_src), from_src, db);
  auto replayed = logged_statements(log, from, db);
  ASSERT_GT(captured.size(), 100u);
  EXPECT_EQ(captured, replayed) << "captured (first):\n" << head(captured) << "replayed (first):\n" << head(replayed);
  EXPECT_TRUE(logged_statements(log, from, "postgres").empty()) << head(logged_statements(log, from, "postgres"));
  // Said once, with the way to apply them.
  const std::string user_warning = "warning: PGUSER is set (elsewhere_role) but was not applied";
  EXPECT_NE(r.out.find(user_warning), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(user_warning), r.out.rfind(user_warning)) << r.out;
  EXPECT_NE(r.out.find("-U elsewhere_role logs every session in as elsewhere_role"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: PGDATABASE is set (postgres) but was not applied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--map-database bars=postgres"), std::string::npos) << r.out;
  std::string json = pt::read_text_file(w.file("report.json"));
  EXPECT_NE(json.find("PGUSER is set (elsewhere_role) but was not applied"), std::string::npos) << json;

  // -d on the command line still replaces the captured database, and then PGDATABASE is not worth a word.
  std::string copy = fresh_copy("bars_copy");
  args = target_args(*pg_);
  args.insert(args.end(), {"--speed", "max", "-d", copy, cap});
  r = pgreplay(args, {{"PGDATABASE", "postgres"}});
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  EXPECT_EQ(query(copy, "select count(*) from pgbench_history"), "20");
  EXPECT_EQ(r.out.find("PGDATABASE"), std::string::npos) << r.out;
}

// The report is the replay's result: when it cannot be written the exit code
// says so, the message names the cause (the error of the call that failed),
// and a report file is never left half-written.
TEST_F(PgReplayTest, ReportThatCannotBeWrittenSaysWhy) {
  WorkDir w;
  const std::string cap = w.file("small.pgwc");
  {
    pt::ProxyProcess rec(recording(*pg_, cap));
    auto r = rec.run(*pg_, {pg_->bindir() + "/psql", "-X", "-c", "select 1"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    rec.stop();
  }
  auto args = target_args(*pg_);
  args.insert(args.end(), {"--speed", "max", cap, "--report"});
  auto with_report = [&](const std::string& path) {
    auto a = args;
    a.push_back(path);
    return a;
  };

  // Written: complete, mode 0600.
  const std::string report = w.file("report.json");
  auto r = pgreplay(with_report(report));
  ASSERT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  std::string json = pt::read_text_file(report);
  EXPECT_NE(json.find("\"exit_code\":0"), std::string::npos) << json;
  EXPECT_EQ(json.substr(json.size() - 3), "]}\n") << json;
  ASSERT_GT(json.size(), 1024u);  // for the file size limit below
  struct stat st {};
  ASSERT_EQ(::stat(report.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A directory.
  r = pgreplay(with_report(w.file("")));
  EXPECT_EQ(r.exit_code, 2) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.err.find("cannot write the report to " + w.file("") + ": open " + w.file("") + ": Is a directory"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("pgreplay report"), std::string::npos) << r.out;

  // A device that takes nothing.
  r = pgreplay(with_report("/dev/full"));
  EXPECT_EQ(r.exit_code, 2) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.err.find("cannot write the report to /dev/full: write /dev/full: No space left on device"),
            std::string::npos)
      << r.err;

  // A write that fails half-way (a file size limit under the report's size): the
  // previous report stays as it was, and no temporary file is left behind.
  { std::ofstream(report, std::ios::trunc) << "previous report\n"; }
  std::vector<std::string> argv = {"sh", "-c", "trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"",
                                   pt::tool_path("pgreplay"), "--no-progress"};
  for (const std::string& a : with_report(report)) argv.push_back(a);
  r = pt::run_command(argv, std::map<std::string, std::string>{}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.err.find("cannot write the report to " + report + ": write " + report + "."), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": File too large; " + report + " left as it was"), std::string::npos) << r.err;
  EXPECT_EQ(pt::read_text_file(report), "previous report\n");
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(w.file(""))) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"report.json", "small.pgwc"}));

  // The text report on a standard output that takes nothing.
  argv = {"sh", "-c", "exec \"$0\" \"$@\" >/dev/full", pt::tool_path("pgreplay"), "--no-progress"};
  argv.insert(argv.end(), args.begin(), args.end() - 1);
  r = pt::run_command(argv, std::map<std::string, std::string>{}, 60s);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("cannot write the report to standard output: No space left on device"), std::string::npos)
      << r.err;
}

TEST(PgReplayUsage, BadArgumentsExitTwo) {
  EXPECT_EQ(pgreplay({"--speed", "fast", "x"}).exit_code, 2);
  EXPECT_EQ(pgreplay({"--ignore", "(", "x"}).exit_code, 2);
  EXPECT_EQ(pgreplay({"--map-user", "nouser", "x"}).exit_code, 2);
  EXPECT_EQ(pgreplay({"/nonexistent/capture"}).exit_code, 2);
  auto help = pgreplay({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
}

// --- authentication -------------------------------------------------------

// Records a psql session as the login role of `pg` (password from PGPASSWORD).
std::string record_login_session(const pt::TempPostgres& pg, const WorkDir& w) {
  std::string cap = w.file("auth.pgwc");
  pt::ProxyProcess rec(recording(pg, cap));
  auto r = rec.run(pg, {pg.bindir() + "/psql", "-X", "-d", "postgres"}, "select 1;\nselect current_user;\n");
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  rec.stop();
  return cap;
}

std::map<std::string, std::string> no_password_env(const WorkDir& w) {
  // HOME without a .pgpass, so the developer's own file is never read.
  return {{"HOME", w.file("home")}};
}

TEST(PgReplayAuth, ScramWithPgpasswordPgpassAndWrongPassword) {
  pt::TempPostgresOptions o;
  o.host_auth = pt::HostAuth::scram_sha_256;
  pt::TempPostgres pg(o);
  WorkDir w;
  fs::create_directories(w.file("home"));
  std::string cap = record_login_session(pg, w);
  auto target = target_args(pg);
  target.push_back(cap);

  // PGPASSWORD.
  auto env = no_password_env(w);
  env["PGPASSWORD"] = pg.password();
  auto r = pgreplay(target, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  EXPECT_NE(field(r.out, "sessions").find("1 ok"), std::string::npos) << r.out;

  // A password file with wildcards and an escaped colon before the matching line; PGPASSFILE.
  std::string passfile = w.file("pgpass");
  {
    std::ofstream f(passfile);
    f << "# comment\n"
      << "otherhost:*:*:*:nope\n"
      << "127.0.0.1:" << pg.port() << ":*:someone\\:else:nope\n"
      << "127.0.0.1:" << pg.port() << ":*:" << pg.user() << ":" << pg.password() << "\n";
  }
  ::chmod(passfile.c_str(), 0600);
  env = no_password_env(w);
  env["PGPASSFILE"] = passfile;
  r = pgreplay(target, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;

  // ~/.pgpass.
  fs::copy_file(passfile, w.file("home/.pgpass"));
  ::chmod(w.file("home/.pgpass").c_str(), 0600);
  r = pgreplay(target, no_password_env(w));
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;

  // --password-file.
  std::vector<std::string> with_file = target_args(pg);
  with_file.insert(with_file.end(), {"--password-file", passfile, cap});
  fs::remove(w.file("home/.pgpass"));
  r = pgreplay(with_file, no_password_env(w));
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;

  // Group-readable: ignored, as libpq does, with a warning; then no password at all.
  ::chmod(passfile.c_str(), 0640);
  env = no_password_env(w);
  env["PGPASSFILE"] = passfile;
  r = pgreplay(target, env);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("group or world access"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no password was supplied"), std::string::npos) << r.out;

  // A wrong password: the server refuses, the session is reported failed, the replay ends.
  env = no_password_env(w);
  env["PGPASSWORD"] = "wrong-password";
  r = pgreplay(target, env);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("login refused: FATAL 28P01"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pgreplay report"), std::string::npos) << r.out;
}

// PGUSER naming a trust role must not turn every captured password login into
// a trust login: a wrong password still fails, and the report says which user
// and database the failed session used.
TEST(PgReplayAuth, CapturedLoginWinsOverPguserOfATrustRole) {
  pt::TempPostgresOptions o;
  o.host_auth = pt::HostAuth::scram_sha_256;
  pt::TempPostgres pg(o);
  WorkDir w;
  fs::create_directories(w.file("home"));
  auto admin = [&](const std::string& db, const std::string& sql) {
    auto r = pg.run_admin_psql({"-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql});
    EXPECT_TRUE(r.ok()) << r.describe();
    return r.out;
  };
  admin("postgres", "CREATE DATABASE bars OWNER " + pg.user());
  admin("bars", "CREATE TABLE marks(n int); GRANT ALL ON marks TO " + pg.user());
  admin("postgres", "CREATE ROLE trusty LOGIN");
  {
    // The trust role of a CI image: first line of pg_hba.conf, so it wins over scram.
    const std::string hba = pg.data_dir() + "/pg_hba.conf";
    const std::string rest = pt::read_text_file(hba);
    std::ofstream(hba, std::ios::trunc) << "host all trusty 127.0.0.1/32 trust\n" << rest;
  }
  admin("postgres", "SELECT pg_reload_conf()");
  pt::CommandResult trust_login;
  for (int i = 0; i < 50; ++i) {
    trust_login = pg.run_psql({"-w", "-U", "trusty", "-c", "select 1"}, {}, {{"PGPASSWORD", "wrong-password"}});
    if (trust_login.ok()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(trust_login.ok()) << "trusty should log in without a password: " << trust_login.describe();

  const std::string cap = w.file("bars.pgwc");
  {
    pt::ProxyProcess rec(recording(pg, cap));
    auto r = rec.run(pg, {pg.bindir() + "/psql", "-X", "-d", "bars"}, "insert into marks values (1);\n");
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    rec.stop();
  }
  ASSERT_EQ(admin("bars", "select count(*) from marks"), "1\n");

  auto args = target_args(pg);
  args.insert(args.end(), {"--report", w.file("report.json"), cap});
  auto env = no_password_env(w);
  env["PGUSER"] = "trusty";
  env["PGDATABASE"] = "postgres";
  env["PGPASSWORD"] = "wrong-password";
  auto r = pgreplay(args, env);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("as " + pg.user() + "@bars: login refused: FATAL 28P01"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: PGUSER is set (trusty) but was not applied"), std::string::npos) << r.out;
  std::string json = pt::read_text_file(w.file("report.json"));
  EXPECT_NE(json.find("\"user\":\"" + pg.user() + "\",\"database\":\"bars\",\"count\":1}"), std::string::npos) << json;
  EXPECT_EQ(admin("bars", "select count(*) from marks"), "1\n");

  // The right password: the captured user logs in, into the captured database.
  env["PGPASSWORD"] = pg.password();
  r = pgreplay(args, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  EXPECT_EQ(admin("bars", "select count(*) from marks"), "2\n");
}

TEST(PgReplayAuth, Md5) {
  pt::TempPostgresOptions o;
  o.host_auth = pt::HostAuth::md5;
  pt::TempPostgres pg(o);
  WorkDir w;
  fs::create_directories(w.file("home"));
  std::string cap = record_login_session(pg, w);
  auto env = no_password_env(w);
  env["PGPASSWORD"] = pg.password();
  auto args = target_args(pg);
  args.push_back(cap);
  auto r = pgreplay(args, env);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  env["PGPASSWORD"] = "wrong";
  r = pgreplay(args, env);
  EXPECT_EQ(r.exit_code, 1) << r.describe() << "\n" << r.out;
  EXPECT_NE(r.out.find("28P01"), std::string::npos) << r.out;
}

// --- the target goes away ---------------------------------------------------

TEST(PgReplayTarget, StoppedMidReplayEndsWithAReport) {
  pt::TempPostgres source;
  WorkDir w;
  std::string cap = w.file("slow.pgwc");
  {
    // One long session, and four short ones starting while it runs.
    pt::ProxyProcess rec(recording(source, cap));
    std::string script;
    for (int i = 0; i < 12; ++i) script += "select pg_sleep(0.25);\n";
    pt::CommandResult long_run;
    std::thread long_session([&] {
      long_run = rec.run(source, {source.bindir() + "/psql", "-X", "-d", "postgres"}, script);
    });
    std::this_thread::sleep_for(2s);
    for (int i = 0; i < 4; ++i) {
      auto r = rec.run(source, {source.bindir() + "/psql", "-X", "-d", "postgres", "-c", "select 1"});
      EXPECT_EQ(r.exit_code, 0) << r.describe();
    }
    long_session.join();
    EXPECT_EQ(long_run.exit_code, 0) << long_run.describe();
    rec.stop();
  }
  pt::TempPostgres target;
  pt::CommandResult result;
  std::vector<std::string> args = target_args(target);
  args.insert(args.end(), {"-U", target.user(), cap});
  auto started = std::chrono::steady_clock::now();
  std::thread replay([&] { result = pgreplay(args, {}, 60s); });
  std::this_thread::sleep_for(1200ms);
  target.stop();
  replay.join();
  auto took = std::chrono::steady_clock::now() - started;
  // The long session lost its server; three of the short ones were refused; then pgreplay
  // gave up on the rest.
  EXPECT_EQ(result.exit_code, 1) << result.describe() << "\n" << result.out;
  EXPECT_NE(result.out.find("pgreplay report (stopped early: target unreachable)"), std::string::npos) << result.out;
  EXPECT_NE(field(result.out, "sessions").find("0 ok, 4 failed, 1 skipped"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("Connection refused"), std::string::npos) << result.out;
  EXPECT_LT(took, 20s);
}

}  // namespace
