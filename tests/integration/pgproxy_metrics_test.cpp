// pgproxy --metrics-listen: its Prometheus endpoint read by a real parser (Debian's
// python3-prometheus-client), its counters checked against the SQL log of the same traffic, and
// the endpoint's guards (a bounded request, a deadline, a bounded number of scrapers) checked with
// raw sockets while pgproxy keeps serving its clients.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loopback.hpp"
#include "pg_server.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"
#include "subprocess.hpp"

namespace pt = pgwire::test;
using pt::ProxyProcess;
using namespace std::chrono_literals;

namespace {

class PgproxyMetricsTest : public pt::SharedServerTest<PgproxyMetricsTest> {
 public:
  static void prepare(pt::TempPostgres& pg) { pt::pgbench_init(pg); }
};

// The port of the endpoint, from pgproxy's "metrics: http://127.0.0.1:PORT/metrics" line.
uint16_t metrics_port(const ProxyProcess& proxy) {
  std::smatch m;
  std::string out = proxy.output();
  if (!std::regex_search(out, m, std::regex(R"(metrics: http://127\.0\.0\.1:(\d+)/metrics)"))) return 0;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

// Scrapes the endpoint with urllib and parses it with prometheus_client's parser: one line
// "content-type VALUE", then "SAMPLE{label=value,...} VALUE" per sample (labels sorted).
constexpr const char* kScraper = R"(
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
r = urllib.request.urlopen(sys.argv[1], timeout=10)
print("content-type", r.headers["Content-Type"])
for family in text_string_to_metric_families(r.read().decode()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(s.name + ("{" + labels + "}" if labels else ""), repr(float(s.value)))
)";

// Debian's own interpreter, where python3-prometheus-client is installed (a python3 earlier in
// the PATH, pyenv's for one, does not see Debian's packages).
constexpr const char* kDebianPython = "/usr/bin/python3";

struct Scrape {
  std::string content_type;
  std::map<std::string, double> samples;
  double at(const std::string& key) const {
    auto it = samples.find(key);
    return it == samples.end() ? -1 : it->second;
  }
};

Scrape scrape(uint16_t port) {
  pt::CommandResult r =
      pt::run_command({kDebianPython, "-c", kScraper, "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
  EXPECT_TRUE(r.ok()) << r.describe();
  Scrape s;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    if (line.rfind("content-type ", 0) == 0) {
      s.content_type = line.substr(13);
    } else {
      s.samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  }
  return s;
}

// How many SQL log lines have this "kind outcome" pair.
int log_lines_with(const std::string& log, const std::string& kind, const std::string& outcome) {
  int n = 0;
  for (const std::string& line : pt::lines_of(log)) {
    if (pt::line_head(line).find(" " + kind + " " + outcome) != std::string::npos) ++n;
  }
  return n;
}

// Everything a raw client gets until the peer closes (or 10 s pass).
std::string http_exchange(uint16_t port, const std::string& request) {
  int fd = pt::connect_to_loopback(port, 10, 10);
  if (!request.empty()) {
    EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), ssize_t(request.size()));
  }
  std::string got;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

TEST_F(PgproxyMetricsTest, PrometheusParserReadsCountersThatMatchTheSqlLog) {
  ProxyProcess proxy(pg(), {"--metrics-listen", "127.0.0.1:0", "--max-connections", "3"});
  uint16_t port = metrics_port(proxy);
  ASSERT_NE(port, 0) << proxy.output();

  pt::CommandResult r =
      proxy.client(pg(), "pgbench", {"-n", "-S", "-M", "prepared", "-c", "2", "-j", "2", "-t", "150"});
  ASSERT_TRUE(r.ok()) << r.describe();
  for (const char* failing : {"SELECT 1/0", "SELEC 1", "SELECT * FROM no_such_table"}) {
    r = proxy.psql(pg(), {"-c", failing});
    EXPECT_FALSE(r.ok()) << failing;
  }
  // Three silent connections take every slot of --max-connections: the next client is refused.
  // (First until pgproxy has seen the end of the sessions above: psql exits without waiting for
  // that, and a session not yet ended still holds its slot.)
  for (int i = 0; i < 100 && scrape(port).at("pgproxy_client_sessions_open") != 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  std::vector<int> holders;
  holders.reserve(3);
  for (int i = 0; i < 3; ++i) holders.push_back(pt::connect_to_loopback(proxy.port(), 10, 10));
  for (int i = 0; i < 100 && scrape(port).at("pgproxy_client_sessions_open") != 3; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  r = proxy.psql(pg(), {"-c", "SELECT 'refused'"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("too many connections"), std::string::npos) << r.err;
  Scrape during = scrape(port);
  for (int fd : holders) close(fd);

  // Until the writer thread has written every line.
  Scrape s;
  std::string log;
  for (int i = 0; i < 100; ++i) {
    s = scrape(port);
    log = pt::read_text_file(proxy.sql_log());
    if (s.at("pgproxy_sql_log_lines_written_total") == static_cast<double>(pt::lines_of(log).size())) break;
    std::this_thread::sleep_for(50ms);
  }
  const auto lines = pt::lines_of(log);
  ASSERT_GT(lines.size(), 300u);
  EXPECT_EQ(s.content_type, "text/plain; version=0.0.4; charset=utf-8");

  // Every statement in the log, counted once under its kind and outcome.
  double statements = 0;
  for (const std::string kind : {"query", "execute", "function_call"}) {
    for (const std::string outcome : {"ok", "error", "not_executed", "unknown"}) {
      double v = s.at("pgproxy_statements_total{kind=" + kind + ",outcome=" + outcome + "}");
      EXPECT_EQ(v, log_lines_with(log, kind, outcome)) << kind << " " << outcome;
      statements += v;
    }
  }
  EXPECT_EQ(statements, static_cast<double>(lines.size()));
  EXPECT_EQ(s.at("pgproxy_statements_total{kind=execute,outcome=ok}"), 300);
  EXPECT_EQ(s.at("pgproxy_statements_total{kind=query,outcome=error}"), 3);
  EXPECT_EQ(s.at("pgproxy_sql_log_lines_written_total"), static_cast<double>(lines.size()));
  EXPECT_EQ(s.at("pgproxy_sql_log_lines_lost_total"), 0);
  // 22012 division_by_zero; 42601 syntax_error and 42P01 undefined_table.
  EXPECT_EQ(s.at("pgproxy_statement_errors_total{sqlstate_class=22}"), 1);
  EXPECT_EQ(s.at("pgproxy_statement_errors_total{sqlstate_class=42}"), 2);
  // The histogram: every statement whose outcome was seen, cumulative buckets ending at +Inf.
  double timed = log_lines_with(log, "query", "ok") + log_lines_with(log, "query", "error") +
                 log_lines_with(log, "execute", "ok") + log_lines_with(log, "execute", "error");
  EXPECT_EQ(s.at("pgproxy_statement_duration_seconds_count"), timed);
  EXPECT_EQ(s.at("pgproxy_statement_duration_seconds_bucket{le=+Inf}"), timed);
  // Every bound present, the counts never decreasing.
  double previous = 0;
  for (const char* le : {"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                         "0.1",   "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "30",   "60",    "+Inf"}) {
    double v = s.at(std::string("pgproxy_statement_duration_seconds_bucket{le=") + le + "}");
    EXPECT_GE(v, previous) << "le=" << le;
    previous = v;
  }
  EXPECT_GT(s.at("pgproxy_statement_duration_seconds_sum"), 0);
  EXPECT_LT(s.at("pgproxy_statement_duration_seconds_sum"), 60);
  // Sessions: the refused one counted; while the three silent connections were open they were
  // the open sessions.
  EXPECT_EQ(during.at("pgproxy_client_sessions_open"), 3);
  EXPECT_EQ(s.at("pgproxy_client_sessions_refused_total"), 1);
  EXPECT_GE(s.at("pgproxy_client_sessions_total"), 2 + 3 + 3 + 1);
  EXPECT_GE(s.at("pgproxy_server_sessions_total"), 2 + 3);
  EXPECT_GT(s.at("pgproxy_received_bytes_total{from=client}"), 0);
  EXPECT_GT(s.at("pgproxy_received_bytes_total{from=server}"), s.at("pgproxy_received_bytes_total{from=client}"));
  EXPECT_GE(s.at("pgproxy_writer_queue_bytes"), 0);
  EXPECT_GT(s.at("pgproxy_rounds_total"), 0);
  double start = s.at("process_start_time_seconds");
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_GT(start, now - 600);
  EXPECT_LE(start, now + 1);
  EXPECT_GE(s.at("pgproxy_metrics_scrapes_total"), 2);
  EXPECT_EQ(s.samples.count("pgproxy_tls_handshakes_total{leg=client}"), 0u) << "TLS lines without TLS";
  EXPECT_EQ(proxy.stop(), 0) << proxy.output();
}

void scrapers_cannot_stall(const pt::TempPostgres& pg, const char* poller) {
  ProxyProcess proxy(pg, {"--metrics-listen", "127.0.0.1:0", "--poller", poller});
  uint16_t port = metrics_port(proxy);
  ASSERT_NE(port, 0) << proxy.output();

  // Requests it does not serve get an HTTP answer that says so, then the connection is closed.
  EXPECT_EQ(http_exchange(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0u);
  EXPECT_EQ(http_exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").rfind("HTTP/1.1 405 ", 0), 0u);
  EXPECT_EQ(http_exchange(port, "hello\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(
      http_exchange(port, "GET /metrics HTTP/1.1\r\nX-Long: " + std::string(20000, 'a')).rfind("HTTP/1.1 431 ", 0), 0u);
  std::string ok = http_exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(ok.find("\npgproxy_statements_total{kind=\"query\",outcome=\"ok\"} "), std::string::npos);

  // A scraper that keeps sending after its request is dropped, and pgproxy serves its clients
  // meanwhile.
  {
    int fd = pt::connect_to_loopback(port, 10, 10);
    std::string flood = "GET /metrics HTTP/1.1\r\n\r\n" + std::string(1 << 20, 'x');
    std::thread sender([&] { (void)send(fd, flood.data(), flood.size(), MSG_NOSIGNAL); });
    auto start = std::chrono::steady_clock::now();
    pt::CommandResult r = proxy.psql(pg, {"-At", "-c", "SELECT 'while flooded'"});
    EXPECT_EQ(r.out, "while flooded\n") << r.describe();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    shutdown(fd, SHUT_RDWR);  // ends the sender if pgproxy has not already
    sender.join();
    close(fd);
  }

  // Sixteen scrapers that send nothing hold every slot; a seventeenth is closed at once (tried
  // until pgproxy has taken the sixteen, and seen the end of the connections above), and pgproxy
  // serves its clients meanwhile.
  std::vector<int> idle;
  idle.reserve(16);
  for (int i = 0; i < 16; ++i) idle.push_back(pt::connect_to_loopback(port, 10, 10));
  auto t0 = std::chrono::steady_clock::now();
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    refused = http_exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").empty();
    if (!refused) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(refused);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  pt::CommandResult r = proxy.psql(pg, {"-At", "-c", "SELECT 'served'"});
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "served\n");
  // Their deadline (5 s) closes them: each sees the end of its connection.
  for (int fd : idle) {
    char c;
    EXPECT_EQ(recv(fd, &c, 1, 0), 0);
    close(fd);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 9s);
  // And the endpoint serves again.
  Scrape s = scrape(port);
  EXPECT_EQ(s.at("pgproxy_statements_total{kind=query,outcome=ok}"), 2);
  EXPECT_TRUE(proxy.alive());
  EXPECT_EQ(proxy.stop(), 0) << proxy.output();
}

// Both ways of waiting (--poller epoll, the default, and poll).
TEST_F(PgproxyMetricsTest, ScrapersCannotStallTheProxyOrHoldTheEndpoint) {
  for (const char* poller : {"epoll", "poll"}) {
    SCOPED_TRACE(poller);
    scrapers_cannot_stall(pg(), poller);
  }
}

TEST(PgproxyMetricsOptions, AnAddressThatCannotBeUsedStopsTheStart) {
  pt::CommandResult r = pt::run_command(
      {pt::tool_path("pgproxy"), "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--metrics-listen", "/tmp"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("--metrics-listen /tmp: a TCP address is needed"), std::string::npos) << r.err;
}

}  // namespace
