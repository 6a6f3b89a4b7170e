// pgdump-log --report-html: the page's figures are --stats' figures (same
// pass, same numbers), everything from the capture is escaped, the page stays
// small for a day of traffic, and a real browser (Debian's chromium, headless)
// draws it: the expected points and rows in its DOM, nothing on its console.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "html_dom.hpp"
#include "rec_to_capture.hpp"
#include "recording.hpp"
#include "subprocess.hpp"
#include "wire_builder.hpp"

namespace pgwire {
namespace {

namespace fs = std::filesystem;
using test::W;
using namespace test::html;

const std::string kCorpus = PGWIRE_CORPUS_DIR;
const std::string kTool = std::string(PGWIRE_BINARY_DIR) + "/tools/pgdump-log/pgdump-log";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A directory of its own per test, removed at the end.
struct TempDir {
  TempDir() {
    path = testing::TempDir() + "pgdump_log_html_" + std::to_string(getpid()) + "_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

// ---------------------------------------------------------------------------
// --stats --stats-format json, read by searching it (its shape is fixed by
// corpus/expected/*.stats.json).

struct StatsJson {
  std::string text;
  // The first group of `re`, searched in `in` (small strings only).
  static std::string match(const std::string& in, const std::string& re) {
    std::smatch m;
    return std::regex_search(in, m, std::regex(re)) ? std::string(m[1]) : "";
  }
  // "key":n pairs of the flat object after "name":
  std::map<std::string, uint64_t> counts(const std::string& name) const {
    std::map<std::string, uint64_t> m;
    const size_t at = text.find("\"" + name + "\":{");
    if (at == std::string::npos) return m;
    const size_t from = text.find('{', at) + 1;
    const std::string object = text.substr(from, text.find('}', from) - from);
    const std::regex pair("\"([^\"]*)\":([0-9]+)");
    for (auto it = std::sregex_iterator(object.begin(), object.end(), pair); it != std::sregex_iterator(); ++it) {
      m[(*it)[1]] = std::stoull((*it)[2]);
    }
    return m;
  }
  // The overall latency object of "statements", empty when it is null.
  std::string overall_latency() const {
    const size_t at = text.find("\"latency\":", text.find("\"statements\":{\"by_kind\""));
    const size_t from = at + std::string("\"latency\":").size();
    if (at == std::string::npos || text[from] != '{') return "";
    return text.substr(from, text.find('}', from) - from + 1);
  }
  // fingerprint -> {count, errors} of the top_by_count list.
  std::map<std::string, std::pair<std::string, std::string>> top_by_count() const {
    std::map<std::string, std::pair<std::string, std::string>> m;
    const size_t from = text.find("\"top_by_count\":["), to = text.find("\"top_by_time\":[");
    const std::string key = "\"fingerprint\":\"";
    for (size_t at = text.find(key, from); at < to; at = text.find(key, at + 1)) {
      const std::string rest = text.substr(at, 120);
      m[rest.substr(key.size(), 16)] = {match(rest, "\"count\":([0-9]+)"), match(rest, "\"errors\":([0-9]+)")};
    }
    return m;
  }
};

// ---------------------------------------------------------------------------
// Captures written here: a recording (tests/support/recording.hpp) turned into
// a capture as the corpus is.

struct Conversation {
  test::Recording rec;
  uint64_t usec = 0;
  void add(int conn, char dir, const test::Wire& w, uint64_t after_usec = 50) {
    usec += after_usec;
    rec.chunks.push_back({conn, dir, usec, w.bytes()});
  }
  void login(int conn, std::string_view user, std::string_view db, std::string_view app) {
    add(conn, 'F', W().startup({{"user", user}, {"database", db}, {"application_name", app}}));
    add(conn, 'B', W().msg('R', W().i32(0)).msg('Z', W().raw("I")));
  }
  void query(int conn, std::string_view sql, uint64_t duration_usec, std::string_view sqlstate = "",
             std::string_view message = "") {
    add(conn, 'F', W().msg('Q', W().str(sql)));
    if (sqlstate.empty()) {
      add(conn, 'B', W().msg('C', W().str("SELECT 1")).msg('Z', W().raw("I")), duration_usec);
    } else {
      add(conn, 'B',
          W().msg('E', W().raw("S").str("ERROR").raw("C").str(sqlstate).raw("M").str(message).byte(0))
              .msg('Z', W().raw("I")),
          duration_usec);
    }
  }
  void terminate(int conn) { add(conn, 'F', W().msg('X', W())); }

  std::string write(const TempDir& dir, const std::string& name) const {
    const std::string rec_path = dir / (name + ".rec");
    std::string cap = dir / (name + ".pgwcap");
    test::save_recording(rec_path, rec);
    std::string error;
    EXPECT_TRUE(test::recording_to_capture(rec_path, cap, /*with_backend=*/true, &error)) << error;
    return cap;
  }
};

test::CommandResult pgdump_log(std::vector<std::string> args) {
  args.insert(args.begin(), {kTool, "--no-progress"});
  return test::run_command(args);
}

// ---------------------------------------------------------------------------

TEST(PgdumpLogHtml, SameFiguresAsStatsInTheSamePass) {
  TempDir dir;
  for (const std::string name : {"pgbench_extended", "psql_multi", "pipeline_error", "copy_in_out", "cancel"}) {
    SCOPED_TRACE(name);
    const std::string cap = kCorpus + "/captures/" + name + ".pgwcap", page = dir / (name + ".html");
    // One run prints --stats and writes the page.
    test::CommandResult r =
        pgdump_log({"--stats", "--stats-format", "json", "--top", "1000", "--report-html", page, cap});
    ASSERT_TRUE(r.ok()) << r.describe();
    const StatsJson stats{r.out};
    const std::string html = slurp(page);
    ASSERT_FALSE(html.empty());
    // Its examples show statements with their parameters: private, as the SQL log is.
    EXPECT_EQ(std::filesystem::status(page).permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

    const auto card = cards(html);
    EXPECT_EQ(card.at("sessions"), StatsJson::match(stats.text, "\"sessions\":\\{\"count\":([0-9]+)"));
    EXPECT_EQ(card.at("span_s"), StatsJson::match(stats.text, "\"span_s\":([0-9.]+)"));
    uint64_t events = 0, executed = 0;
    for (const auto& [k, n] : stats.counts("by_kind")) events += n;
    const auto outcomes = stats.counts("by_outcome");
    for (const auto& [k, n] : outcomes) executed += k == "not_executed" ? 0 : n;
    const uint64_t errors = outcomes.count("error") ? outcomes.at("error") : 0;
    EXPECT_EQ(card.at("statements"), std::to_string(events));
    EXPECT_EQ(card.at("executed"), std::to_string(executed));
    EXPECT_EQ(card.at("errors"), std::to_string(errors));
    const std::string latency = stats.overall_latency();
    const std::string known = StatsJson::match(latency, "\"count\":([0-9]+)");
    EXPECT_EQ(card.at("latency_count"), known.empty() ? "0" : known);
    for (const std::string p : {"p50", "p95", "p99", "max"}) {
      EXPECT_EQ(card.at(p + "_ms"), StatsJson::match(latency, "\"" + p + "_ms\":([0-9.]+)")) << p;
    }

    // Every statement, with its count and errors (--top 1000 lists them all).
    auto expected = stats.top_by_count();
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(card.at("distinct"), std::to_string(expected.size()));
    const auto rows = body_rows(element(html, "top-statements"));
    ASSERT_EQ(rows.size(), expected.size());
    for (std::string_view row : rows) {
      const std::string fp = attr(row, "data-fingerprint").value();
      ASSERT_TRUE(expected.count(fp)) << fp;
      const auto v = cell_values(row);  // count, errors, total, mean, p50, p95, p99, max, rows
      ASSERT_EQ(v.size(), 9u);
      EXPECT_EQ(v[0], expected[fp].first) << fp;
      EXPECT_EQ(v[1], expected[fp].second) << fp;
    }

    // Errors by SQLSTATE.
    std::map<std::string, uint64_t> sqlstates;
    for (std::string_view row : body_rows(element(html, "errors"))) {
      sqlstates[attr(row, "data-sqlstate").value()] = std::stoull(cell_values(row).at(0));
    }
    EXPECT_EQ(sqlstates, stats.counts("errors_by_sqlstate"));

    // The charts hold every executed statement, every error, every duration.
    const std::string_view statements_chart = element(html, "chart-statements");
    const std::string_view latency_chart = element(html, "chart-latency");
    EXPECT_EQ(attr(statements_chart, "data-statements"), std::to_string(executed));
    EXPECT_EQ(sum_attr(statements_chart, "<rect ", "data-n"), executed);
    EXPECT_EQ(sum_attr(element(html, "chart-errors"), "<rect ", "data-e"), errors);
    EXPECT_EQ(sum_attr(latency_chart, "<rect ", "data-k"), known.empty() ? 0 : std::stoull(known));
    const size_t buckets = std::stoul(attr(statements_chart, "data-buckets").value());
    EXPECT_GE(buckets, 1u);
    EXPECT_LE(buckets, 600u);
    EXPECT_EQ(attr(statements_chart, "data-points"), std::to_string(buckets));
  }
}

TEST(PgdumpLogHtml, EverythingFromTheCaptureIsEscapedAndNothingIsFetched) {
  TempDir dir;
  Conversation c;
  c.login(0, "<b>mallory</b>", "db\"'&", "</script><script>document.title='pwned'</script>");
  c.query(0, "SELECT '</script><img src=x onerror=\"document.body.dataset.pwned=1\">' AS x", 900);
  c.query(0, "SELECT 1 FROM \"<svg onload=alert(1)>\"", 300, "42P01", "relation \"<svg onload=alert(1)>\" missing");
  c.terminate(0);
  const std::string cap = c.write(dir, "hostile"), page = dir / "hostile.html";
  test::CommandResult r = pgdump_log({"--report-html", page, cap});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.out.find("sql: SELECT 1 FROM"), std::string::npos) << "the SQL log still goes to stdout";
  const std::string html = slurp(page);

  EXPECT_NE(html.find("SELECT ? AS x"), std::string::npos);
  EXPECT_NE(html.find("sql: SELECT &#39;&lt;/script&gt;&lt;img src=x onerror=&quot;document.body"), std::string::npos)
      << "the example: a line of the SQL log";
  EXPECT_NE(html.find("&lt;b&gt;mallory&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("db&quot;&#39;&amp;"), std::string::npos);
  EXPECT_NE(html.find("relation &quot;&lt;svg onload=alert(1)&gt;&quot; missing"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<svg onload"), std::string::npos);
  EXPECT_EQ(tags(html, "<script").size(), 1u) << "only the page's own script";
  // Self-contained: nothing that loads anything.
  for (const char* word : {"http:", "https:", " src=\"", " href=\"", "url(", "@import"}) {
    EXPECT_EQ(html.find(word), std::string::npos) << word;
  }
  EXPECT_NE(html.find("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'sha256-"),
            std::string::npos);
}

std::string fmt_sqlstate(int n) {
  std::string code = "Z0000";
  for (int i = 4; i > 0 && n > 0; --i, n /= 10) code[static_cast<size_t>(i)] = static_cast<char>('0' + n % 10);
  return code;
}

TEST(PgdumpLogHtml, ADayOfTrafficStaysSmall) {
  TempDir dir;
  Conversation c;
  c.login(0, "app", "shop", "web");
  const uint64_t day_usec = uint64_t{86400} * 1000000;
  const int statements = 6000;
  for (int i = 0; i < statements; ++i) {
    // 300 distinct statements (the table name), each with other literals.
    const std::string table = {'t', static_cast<char>('a' + i % 300 / 26), static_cast<char>('a' + i % 300 % 26)};
    const std::string sql = "SELECT * FROM " + table + " WHERE id = " + std::to_string(i) + " AND note = '" +
                            std::string(static_cast<size_t>(200 + i % 50), 'x') + "'";
    c.usec = 1000 + day_usec / statements * static_cast<uint64_t>(i);
    if (i % 37 == 0) {  // 163 errors, each its own SQLSTATE
      c.query(0, sql, 5000, fmt_sqlstate(i / 37), "could not serialize access");
    } else {
      c.query(0, sql, 100 + static_cast<uint64_t>(i % 1000));
    }
  }
  c.terminate(0);
  for (int conn = 1; conn <= 150; ++conn) {  // 150 more users, a session each
    c.login(conn, "user" + std::to_string(conn), "shop", "batch");
    c.query(conn, "SELECT 1", 100);
    c.terminate(conn);
  }
  const std::string cap = c.write(dir, "day"), page = dir / "day.html";
  test::CommandResult r = pgdump_log({"--report-html", page, "--stats", "--stats-format", "json", cap});
  ASSERT_TRUE(r.ok()) << r.describe();
  const std::string html = slurp(page);
  EXPECT_LT(html.size(), 2u << 20) << "a day of traffic: a page of at most a few MB";
  const std::string_view chart = element(html, "chart-statements");
  const size_t buckets = std::stoul(attr(chart, "data-buckets").value());
  EXPECT_GE(buckets, 240u);
  EXPECT_LE(buckets, 600u);
  EXPECT_EQ(sum_attr(chart, "<rect ", "data-n"), static_cast<uint64_t>(statements) + 150);
  const size_t rows = body_rows(element(html, "top-statements")).size();
  EXPECT_GE(rows, 100u) << "the 100 with the most total time";
  EXPECT_LE(rows, 200u) << "and those of the 100 most frequent not among them";
  EXPECT_EQ(cards(html).at("distinct"), "301");  // and SELECT ?
  // At most 100 rows, and one for the rest.
  const auto errors = body_rows(element(html, "errors"));
  ASSERT_EQ(errors.size(), 101u);
  EXPECT_EQ(attr(errors.back(), "data-rest"), "63");
  uint64_t error_rows = 0;
  for (std::string_view row : errors) error_rows += std::stoull(cell_values(row).at(0));
  EXPECT_EQ(error_rows, 163u);
  const auto users = body_rows(element(html, "sessions-by-user"));
  ASSERT_EQ(users.size(), 101u);
  EXPECT_NE(users.back().find("(the other 51)"), std::string_view::npos);
  EXPECT_EQ(cards(html).at("sessions"), "151");
}

TEST(PgdumpLogHtml, AReportThatCannotBeWrittenFailsBeforeReading) {
  test::CommandResult r =
      pgdump_log({"--report-html", "/nonexistent/dir/r.html", kCorpus + "/captures/pgbench_simple.pgwcap"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot write the report /nonexistent/dir/r.html"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "nothing read, nothing printed";
}

// In the browser: the charts drawn with the points of the page, the tables
// with their rows, the sorting script run (and applied from the URL), and not
// a line on the console.
void check_in_chromium(const TempDir& dir, const std::string& page, bool durations_known) {
  const std::string html = slurp(page);
  Browser b = load_in_chromium(dir.path, "file://" + page + "#sort=top-statements.count.asc");
  ASSERT_FALSE(b.dom.empty());
  EXPECT_TRUE(b.console.empty()) << joined(b.console);

  for (const std::string id : {"chart-statements", "chart-errors", "chart-latency"}) {
    const std::string_view ours = element(html, id), drawn = element(b.dom, id);
    ASSERT_FALSE(drawn.empty()) << id;
    const std::string points = attr(ours, "data-points").value();
    EXPECT_EQ(attr(drawn, "data-points"), points) << id;
    const auto paths = tags(drawn, "<path ");
    if (id == "chart-latency") {
      // p50, p95, p99 at each bucket where a statement with a known duration started.
      size_t with_durations = 0;
      for (std::string_view t : tags(ours, "<rect ")) with_durations += attr(t, "data-k") != "0" ? 1 : 0;
      EXPECT_EQ(points, std::to_string(with_durations));
      EXPECT_EQ(paths.size(), durations_known ? 3u : 0u);
    } else {
      EXPECT_EQ(points, attr(ours, "data-buckets").value()) << id;
      EXPECT_EQ(paths.size(), 1u) << id;
    }
    for (std::string_view p : paths) {
      EXPECT_EQ(std::to_string(path_points(p)), points) << id << " " << attr(p, "data-series").value_or("?");
    }
    EXPECT_EQ(tags(drawn, "<rect ").size(), tags(ours, "<rect ").size()) << id;
  }
  for (const std::string id : {"top-statements", "errors", "sessions-by-user", "sessions-by-database",
                               "sessions-by-application", "sessions-by-client"}) {
    const std::string_view drawn = element(b.dom, id);
    EXPECT_EQ(attr(drawn, "data-sortable"), "ready") << id << ": the script ran";
    EXPECT_EQ(body_rows(drawn).size(), body_rows(element(html, id)).size()) << id;
  }
  EXPECT_GE(body_rows(element(b.dom, "sessions-by-user")).size(), 1u);
  // Sorted by the URL: count ascending.
  const std::string_view table = element(b.dom, "top-statements");
  uint64_t previous = 0;
  for (std::string_view row : body_rows(table)) {
    const uint64_t count = std::stoull(cell_values(row).at(0));
    EXPECT_GE(count, previous);
    previous = count;
  }
  const auto count_header = tags(table, "<th data-key=\"count\"");
  ASSERT_EQ(count_header.size(), 1u);
  EXPECT_EQ(attr(count_header[0], "aria-sort"), "ascending") << count_header[0];
}

TEST(PgdumpLogHtml, ChromiumDrawsACorpusReport) {
  TempDir dir;
  const std::string page = dir / "report.html";
  ASSERT_TRUE(pgdump_log({"--report-html", page, kCorpus + "/captures/psql_multi.pgwcap"}).ok());
  check_in_chromium(dir, page, true);
}

TEST(PgdumpLogHtml, ChromiumDrawsAReportWithoutDurations) {
  TempDir dir;
  const std::string page = dir / "report.html";
  ASSERT_TRUE(pgdump_log({"--report-html", page, kCorpus + "/captures/pgbench_extended_frontend_only.pgwcap"}).ok());
  check_in_chromium(dir, page, false);
}

TEST(PgdumpLogHtml, ChromiumShowsHostileTextAsText) {
  TempDir dir;
  Conversation c;
  c.login(0, "<b>mallory</b>", "db", "</script><script>document.title='pwned'</script>");
  c.query(0, "SELECT '</script><img src=x onerror=\"document.body.dataset.pwned=1\">' AS x", 900);
  c.query(0, "SELECT 1 FROM \"<svg onload=alert(1)>\"", 300, "42P01", "<img src=x onerror=alert(2)>");
  c.terminate(0);
  const std::string cap = c.write(dir, "hostile"), page = dir / "hostile.html";
  ASSERT_TRUE(pgdump_log({"--report-html", page, cap}).ok());
  Browser b = load_in_chromium(dir.path, "file://" + page);
  ASSERT_FALSE(b.dom.empty());
  EXPECT_TRUE(b.console.empty()) << joined(b.console);
  EXPECT_EQ(b.dom.find("<img"), std::string::npos);
  EXPECT_EQ(b.dom.find("pwned=\""), std::string::npos);
  EXPECT_EQ(b.dom.find("<title>pwned"), std::string::npos);
  EXPECT_EQ(tags(b.dom, "<script").size(), 1u);
  EXPECT_NE(b.dom.find("&lt;img src=x onerror=alert(2)&gt;"), std::string::npos) << "shown as text";
  EXPECT_NE(b.dom.find("&lt;b&gt;mallory&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(body_rows(element(b.dom, "errors")).size(), 1u);
}

}  // namespace
}  // namespace pgwire
