#include "proxy.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <memory>
#include <vector>

#include "async_writer.hpp"
#include "diag.hpp"
#include "epoll_set.hpp"
#include "log_filter.hpp"
#include "metrics.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/net.hpp"
#include "pgwire/system.hpp"
#include "proxy_session.hpp"
#include "send_batch.hpp"

namespace pgproxy {

namespace {

constexpr size_t kReadBuffer = size_t{64} * 1024;
constexpr int kAcceptsPerWakeup = 64;
constexpr int64_t kAcceptBackoffMs = 100;
constexpr size_t kBatchSubmitBytes = size_t{256} * 1024;
constexpr int64_t kBatchMaxAgeMs = 10;
constexpr size_t kMaxRejecting = 256;  // connections being refused at the same time

void raise_fd_limit(uint64_t max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
      rl = want;
    } else {
      diag("cannot raise the open file limit to {}: {}", rl.rlim_max, pgwire::errno_text(errno));
    }
  }
  uint64_t need = max_connections * 2 + 64;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    diag("warning: the open file limit {} is below what --max-connections {} needs ({})", rl.rlim_cur, max_connections,
         need);
  }
}

const char* signal_name(uint32_t sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

// Keys of the epoll registrations (EpollSet: descriptor numbers are reused).
// A session's client socket by the session's id; its server socket also by
// which of its server sockets it is (counted modulo 2^15: a session tries
// one socket per upstream address); the proxy's own descriptors by number,
// with bit 63 set (session ids stay far below 2^47).
uint64_t client_key(const ProxySession& s) { return s.id() << 16; }
uint64_t server_key(const ProxySession& s) { return (s.id() << 16) | (1 + (s.server_sockets() & 0x7fff)); }

class Proxy {
 public:
  explicit Proxy(const ProxyOptions& opts) : opts_(opts) {}
  ~Proxy() {
    sessions_.clear();
    close_listeners();
    if (signal_fd_ >= 0) close(signal_fd_);
    if (keylog_fd_ >= 0) close(keylog_fd_);
  }

  int run() {
    if (!setup()) return 1;
    int sig = loop();
    return stop(sig);
  }

 private:
  enum class SlotKind : uint8_t { kSignal, kWake, kListener, kClient, kServer, kMetricsListener, kMetricsConnection };
  struct Slot {
    SlotKind kind;
    ProxySession* session;
  };
  static uint64_t proxy_key(SlotKind kind, int fd) {
    return (uint64_t{1} << 63) | (uint64_t(kind) << 32) | uint32_t(fd);
  }
  // A scraper's connection by its serial number (descriptor numbers are reused).
  static uint64_t metrics_key(uint64_t serial) {
    return (uint64_t{1} << 63) | (uint64_t(SlotKind::kMetricsConnection) << 32) | uint32_t(serial);
  }

  // What one wake-up found ready, from either way of waiting.
  struct Event {
    SlotKind kind;
    ProxySession* session;
    int fd;
    short revents;
  };

  bool setup();
  int loop();  // returns the signal that stopped it
  int wait_for_events(int64_t now);
  void touch(ProxySession* s);
  void touch_all();
  void update_interest();
  void update_session_interest(ProxySession& s);
  bool update_registration(ProxySession& s, ProxySession::Registration& reg, int fd, short events, uint64_t key,
                           SlotKind kind);
  void update_listening(int64_t now);
  void cannot_wait(ProxySession& s, const char* side);
  int stop(int sig);
  void final_sweep();
  int poll_timeout(int64_t now, int64_t next_deadline) const;
  void build_poll_set(int64_t now, int64_t& next_deadline);
  void accept_from(int listen_fd, int64_t now);
  void close_listeners();
  int read_signal();
  void reopen_files();
  bool setup_tls(const pgwire::HostPort& upstream);
  void reload_tls();
  void reap();
  void maybe_submit(int64_t now, bool force);
  void housekeeping(int64_t now);
  void check_rotation_size();
  void start_new_files(bool log, bool capture);
  void report_stats(int64_t now);
  void on_metrics_event(const Event& ev, int64_t now);
  void watch_metrics_connection(MetricsConnection& c);
  void render_metrics_text(std::string& out) const;
  bool setup_log_selection();

  ProxyOptions opts_;
  SessionContext ctx_;
  WriteBatch batch_;
  int64_t batch_since_ms_ = 0;  // when the batch stopped being empty
  // Rotation: bytes handed to the writer for the current files (a capture's
  // re-announced sessions not counted), the next interval boundary (real
  // time), and the once-a-second look at the interval and a failed capture.
  uint64_t log_bytes_ = 0;
  uint64_t capture_bytes_ = 0;
  uint64_t reannounced_bytes_ = 0;  // in batch_, not counted when submitted
  int64_t next_rotation_ns_ = 0;
  int64_t next_housekeeping_ms_ = 0;
  std::unique_ptr<AsyncWriter> writer_;
  std::unique_ptr<SendBatch> sends_;
  std::unique_ptr<EpollSet> epoll_;           // null: poll() over every descriptor each round
  std::unique_ptr<MetricsEndpoint> metrics_;  // --metrics-listen; null: off
  StatementMetrics statement_metrics_;
  LogFilter log_filter_;
  double start_time_seconds_ = 0;
  int signal_fd_ = -1;
  int keylog_fd_ = -1;
  std::vector<int> listeners_;
  std::vector<std::string> socket_files_;  // our Unix sockets, removed when we stop listening
  int64_t listen_paused_until_ms_ = 0;
  uint64_t next_session_id_ = 0;
  uint64_t rejecting_ = 0;
  int64_t last_reject_diag_ms_ = -1000;
  int64_t last_accept_diag_ms_ = -1000;
  uint64_t accept_errors_unreported_ = 0;
  std::vector<std::unique_ptr<ProxySession>> sessions_;
  // With poll(): the one poll set, rebuilt every round from what each session wants.
  std::vector<pollfd> pfds_;
  std::vector<Slot> slots_;
  // With epoll: the sessions whose interest may have changed this round (they
  // had an event, queued output, a timer, or are new), the earliest deadline
  // any session has asked for (a deadline moved later or cleared leaves it
  // early: the timer pass then finds nothing due and takes the true minimum),
  // and whether the listeners are registered.
  std::vector<ProxySession*> touched_;
  int64_t next_deadline_ = 0;
  bool listening_ = false;
  bool metrics_listening_ = false;  // the metrics endpoint's listening sockets registered
  // A session ended this round: reap() has something to do. With epoll every
  // session that ends was touched (ending takes a call into it), so the walk
  // over all sessions, a cache miss each, is left out of the other rounds.
  bool reap_needed_ = false;
  std::vector<EpollSet::Ready> ready_;
  std::vector<Event> events_;
  bool throttled_ = false;
  // Statistics.
  int64_t stats_every_ms_ = 0;
  int64_t next_stats_ms_ = 0;
  int64_t last_stats_ms_ = 0;
  ProxyStats last_stats_;
};

bool Proxy::setup() {
  raise_fd_limit(opts_.max_connections);

  // Signals arrive through a signalfd; blocked here, before the writer thread
  // starts, so that thread inherits the mask and never takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    diag("signalfd: {}", pgwire::errno_text(errno));
    return false;
  }
  signal(SIGPIPE, SIG_IGN);

  std::string error;
  auto up = pgwire::parse_host_port(opts_.upstream, "5432", error);
  if (!up) {
    diag("--upstream {}", error);
    return false;
  }
  ctx_.upstream = pgwire::resolve(*up, false, error);
  if (ctx_.upstream.empty()) {
    diag("--upstream {}", error);
    return false;
  }
  ctx_.upstream_text = pgwire::format_address(ctx_.upstream.front());
  ctx_.startup_timeout_ms = static_cast<int64_t>(opts_.startup_timeout * 1000);
  if (!setup_tls(*up)) return false;

  auto lh = pgwire::parse_host_port(opts_.listen, "6432", error);
  if (!lh) {
    diag("--listen {}", error);
    return false;
  }
  auto addrs = pgwire::resolve(*lh, true, error);
  if (addrs.empty()) {
    diag("--listen {}", error);
    return false;
  }
  for (const auto& a : addrs) {
    int fd = pgwire::listen_on(a, 1024, error, opts_.reuse_port);
    if (fd < 0) {
      diag("{}", error);
      continue;
    }
    listeners_.push_back(fd);
    if (std::string path = pgwire::unix_path(a); !path.empty()) socket_files_.push_back(std::move(path));
  }
  if (listeners_.empty()) return false;
  if (!opts_.metrics_listen.empty()) {
    metrics_ = MetricsEndpoint::open(opts_.metrics_listen, error);
    if (!metrics_) {
      diag("{}", error);
      return false;
    }
    ctx_.metrics = &statement_metrics_;
  }
  start_time_seconds_ = static_cast<double>(pgwire::realtime_ns()) / 1e9;

  if (opts_.log_format != "text" && opts_.log_format != "json" && opts_.log_format != "csvlog") {
    diag("--log-format must be text, json or csvlog");
    return false;
  }
  WriterOptions wo;
  wo.sql_log_path = opts_.sql_log;
  wo.capture_path = opts_.capture;
  wo.capture.redact_secrets = !opts_.capture_secrets;
  wo.capture.creator_pid = static_cast<uint32_t>(getpid());
  wo.capture.creator = fmt::format("pgproxy {}", kVersion);
  wo.rotation.size = opts_.rotate_size;
  wo.rotation.interval_s = opts_.rotate_interval_s;
  wo.rotation.keep = opts_.rotate_keep;
  wo.rotation.compress = opts_.rotate_compress;
  wo.log_csv = opts_.log_format == "csvlog";
  writer_ = AsyncWriter::start(std::move(wo), error);
  if (!writer_) {
    diag("{}", error);
    return false;
  }

  ctx_.log_format = opts_.log_format == "json"     ? pgwire::LogFormat::kJson
                    : opts_.log_format == "csvlog" ? pgwire::LogFormat::kCsvlog
                                                   : pgwire::LogFormat::kText;
  if (!setup_log_selection()) return false;
  ctx_.log_enabled = writer_->has_log();
  ctx_.capture_enabled = writer_->has_capture();
  log_bytes_ = writer_->log_initial_size();
  if (opts_.rotate_size != 0 || opts_.rotate_interval_s > 0) {
    if (writer_->has_log() && !writer_->log_rotatable())
      diag("warning: the SQL log {} is not a regular file: written where it is, never rotated",
           opts_.sql_log == "-" ? "(standard output)" : opts_.sql_log);
    if (writer_->has_capture() && !writer_->capture_rotatable())
      diag("warning: the capture {} is not a regular file: written where it is, never rotated",
           opts_.capture == "-" ? "(standard output)" : opts_.capture);
  }
  if (opts_.rotate_interval_s > 0) next_rotation_ns_ = next_rotation_ns(pgwire::realtime_ns(), opts_.rotate_interval_s);
  if (opts_.rotate_interval_s > 0 || (writer_->has_capture() && opts_.capture != "-"))
    next_housekeeping_ms_ = pgwire::monotonic_ms() + 1000;
  ctx_.capture_backend = opts_.capture_backend;
  batch_ = writer_->new_batch();
  ctx_.batch = &batch_;
  ctx_.scratch.resize(kReadBuffer);
  sends_ = std::make_unique<SendBatch>(opts_.io_uring);
  std::string epoll_error;
  if (opts_.epoll) {
    epoll_ = std::make_unique<EpollSet>();
    if (!epoll_->ok()) {
      epoll_error = epoll_->error();
      epoll_.reset();
    }
  }
  if (epoll_ && (!epoll_->set(signal_fd_, POLLIN, proxy_key(SlotKind::kSignal, signal_fd_), uint8_t(SlotKind::kSignal),
                              nullptr) ||
                 !epoll_->set(writer_->wake_fd(), POLLIN, proxy_key(SlotKind::kWake, writer_->wake_fd()),
                              uint8_t(SlotKind::kWake), nullptr))) {
    epoll_error = fmt::format("epoll_ctl: {}", pgwire::errno_text(errno));
    epoll_.reset();
  }

  for (int fd : listeners_) diag("listening on {}", pgwire::local_address(fd));
  diag("upstream {}; SQL log {}; capture {}{}", ctx_.upstream_text,
       opts_.sql_log.empty() ? "off" : (opts_.sql_log == "-" ? "stdout" : opts_.sql_log),
       opts_.capture.empty() ? "off" : (opts_.capture == "-" ? "stdout" : opts_.capture),
       opts_.capture_backend ? " (with backend frames)" : "");
  if (ctx_.client_tls) {
    diag("TLS toward clients: {} ({} or newer{})", opts_.client_tls.cert_file, opts_.client_tls.min_version,
         opts_.client_tls.verify == ClientVerify::kNone       ? ""
         : opts_.client_tls.verify == ClientVerify::kVerifyCa ? ", client certificates required"
                                                              : ", client certificates required, CN = user");
  }
  if (ctx_.server_tls) diag("TLS toward the server: sslmode {}", upstream_sslmode_name(ctx_.upstream_sslmode));
  if (metrics_) diag("metrics: http://{}/metrics", metrics_->address());
  if (epoll_) {
    diag("waits: epoll, only what changed since the last round passed to the kernel");
  } else if (opts_.epoll) {
    diag("waits: poll(), every descriptor every round (epoll is not available: {})", epoll_error);
  } else {
    diag("waits: poll(), every descriptor every round (--poller poll)");
  }
  if (sends_->uses_io_uring()) {
    diag("writes: io_uring, one call per poll() round");
  } else if (opts_.io_uring) {
    diag("writes: send(), one call per socket (io_uring is not available: {})", sends_->fallback_reason());
  } else {
    diag("writes: send(), one call per socket (--no-io-uring)");
  }
  stats_every_ms_ = static_cast<int64_t>(opts_.stats_interval * 1000);
  last_stats_ms_ = pgwire::monotonic_ms();
  next_stats_ms_ = stats_every_ms_ > 0 ? last_stats_ms_ + stats_every_ms_ : 0;
  return true;
}

bool Proxy::setup_tls(const pgwire::HostPort& upstream) {
  std::string error;
  const ClientTlsOptions& co = opts_.client_tls;
  if (co.enabled() != !co.key_file.empty()) {
    diag("--tls-cert and --tls-key go together");
    return false;
  }
  if (!co.enabled() && (!co.ca_file.empty() || co.verify != ClientVerify::kNone)) {
    diag("--tls-ca and --tls-client-verify need --tls-cert and --tls-key");
    return false;
  }
  if (co.enabled()) {
    ctx_.client_tls = TlsContext::for_clients(co, error);
    if (!ctx_.client_tls) {
      diag("{}", error);
      return false;
    }
  }
  ServerTlsOptions so = opts_.server_tls;
  ctx_.upstream_sslmode = so.mode;
  if (so.mode != UpstreamSslMode::kDisable) {
    if (upstream.is_unix()) {
      // As libpq: a Unix socket is never encrypted.
      if (so.mode != UpstreamSslMode::kPrefer) {
        diag("--upstream-sslmode {}: there is no TLS over a Unix socket; give --upstream a TCP address",
             upstream_sslmode_name(so.mode));
        return false;
      }
    } else {
      so.host = upstream.host;
      ctx_.upstream_host = so.host;
      ctx_.server_tls = TlsContext::for_server(so, error);
      if (!ctx_.server_tls) {
        diag("{}", error);
        return false;
      }
    }
  }
  if (!opts_.tls_keylog.empty()) {
    keylog_fd_ = pgwire::open_private(opts_.tls_keylog, O_APPEND | O_NOFOLLOW);
    if (keylog_fd_ < 0) {
      diag("--tls-keylog {}: {}", opts_.tls_keylog, pgwire::errno_text(errno));
      return false;
    }
    diag(
        "warning: --tls-keylog: the TLS secrets of every connection go to {}; whoever reads it can decrypt "
        "recorded traffic",
        opts_.tls_keylog);
    if (ctx_.client_tls) ctx_.client_tls->set_keylog_fd(keylog_fd_);
    if (ctx_.server_tls) ctx_.server_tls->set_keylog_fd(keylog_fd_);
  }
  return true;
}

// SIGHUP: new certificates and keys for new connections (rotation); open
// sessions keep the context they started with. A file that does not load
// keeps the old context, and says why.
void Proxy::reload_tls() {
  std::string error;
  if (ctx_.client_tls) {
    auto fresh = TlsContext::for_clients(opts_.client_tls, error);
    if (fresh) {
      if (keylog_fd_ >= 0) fresh->set_keylog_fd(keylog_fd_);
      ctx_.client_tls = std::move(fresh);
      diag("SIGHUP: reloaded the certificate and key for clients ({})", opts_.client_tls.cert_file);
    } else {
      ++ctx_.stats.errors;
      diag("SIGHUP: keeping the previous certificate and key for clients: {}", error);
    }
  }
  if (ctx_.server_tls) {
    ServerTlsOptions so = ctx_.server_tls->server_options();
    auto fresh = TlsContext::for_server(so, error);
    if (fresh) {
      if (keylog_fd_ >= 0) fresh->set_keylog_fd(keylog_fd_);
      ctx_.server_tls = std::move(fresh);
    } else {
      ++ctx_.stats.errors;
      diag("SIGHUP: keeping the previous TLS settings toward the server: {}", error);
    }
  }
}

void Proxy::build_poll_set(int64_t now, int64_t& next_deadline) {
  pfds_.clear();
  slots_.clear();
  auto add = [this](int fd, short events, SlotKind kind, ProxySession* s) {
    pfds_.push_back(pollfd{fd, events, 0});
    slots_.push_back(Slot{kind, s});
  };
  add(signal_fd_, POLLIN, SlotKind::kSignal, nullptr);
  add(writer_->wake_fd(), POLLIN, SlotKind::kWake, nullptr);
  if (now >= listen_paused_until_ms_) {
    for (int fd : listeners_) add(fd, POLLIN, SlotKind::kListener, nullptr);
  }
  if (metrics_) {
    if (metrics_->listening(now)) {
      for (int fd : metrics_->listen_fds()) add(fd, POLLIN, SlotKind::kMetricsListener, nullptr);
    }
    for (const auto& c : metrics_->connections())
      add(c->fd, MetricsEndpoint::events(*c), SlotKind::kMetricsConnection, nullptr);
  }
  throttled_ = writer_->should_throttle();
  next_deadline = 0;
  for (auto& s : sessions_) {
    if (s->done()) continue;
    if (short ev = s->client_events(throttled_)) add(s->client_fd(), ev, SlotKind::kClient, s.get());
    if (short ev = s->server_events(throttled_)) add(s->server_fd(), ev, SlotKind::kServer, s.get());
    int64_t d = s->deadline_ms();
    if (d != 0 && (next_deadline == 0 || d < next_deadline)) next_deadline = d;
  }
}

int Proxy::poll_timeout(int64_t now, int64_t next_deadline) const {
  int64_t wake = -1;
  auto consider = [&](int64_t at) {
    if (at == 0) return;
    int64_t in = std::max<int64_t>(0, at - now);
    if (wake < 0 || in < wake) wake = in;
  };
  consider(next_deadline);
  consider(next_stats_ms_);
  if (metrics_) {
    consider(metrics_->next_deadline());
    if (!metrics_->listening(now)) consider(metrics_->paused_until_ms());
  }
  if (batch_since_ms_ != 0) consider(batch_since_ms_ + kBatchMaxAgeMs);
  consider(next_housekeeping_ms_);
  if (now < listen_paused_until_ms_) consider(listen_paused_until_ms_);
  if (throttled_) consider(now + 50);  // the writer's wake-up may race with our check
  return wake < 0 ? -1 : static_cast<int>(std::min<int64_t>(wake, 60'000));
}

// One wait, either way, into events_. With epoll the registrations were
// brought up to date at the end of the previous round; with poll() the whole
// set is built here.
int Proxy::wait_for_events(int64_t now) {
  events_.clear();
  if (epoll_) {
    int n = epoll_->wait(ready_, poll_timeout(now, next_deadline_));
    if (n < 0) return n;
    for (const EpollSet::Ready& r : ready_) {
      events_.push_back(Event{SlotKind(r.role), static_cast<ProxySession*>(r.owner), r.fd, r.revents});
    }
    return n;
  }
  int64_t next_deadline = 0;
  build_poll_set(now, next_deadline);
  next_deadline_ = next_deadline;
  int n = poll(pfds_.data(), pfds_.size(), poll_timeout(now, next_deadline));
  if (n < 0) return n;
  for (size_t i = 0; i < pfds_.size() && events_.size() < static_cast<size_t>(n); ++i) {
    if (pfds_[i].revents != 0)
      events_.push_back(Event{slots_[i].kind, slots_[i].session, pfds_[i].fd, pfds_[i].revents});
  }
  return n;
}

int Proxy::loop() {
  for (;;) {
    int64_t now = pgwire::monotonic_ms();
    update_listening(now);
    int n = wait_for_events(now);
    if (n < 0 && errno != EINTR) {
      diag("{}: {}", epoll_ ? "epoll_wait" : "poll", pgwire::errno_text(errno));
      return SIGTERM;
    }
    now = pgwire::monotonic_ms();
    if (n > 0) {
      ++ctx_.stats.polls;
      ctx_.stats.ready += static_cast<uint64_t>(n);
    }
    for (const Event& ev : events_) {
      switch (ev.kind) {
        case SlotKind::kSignal: {
          int sig = read_signal();
          if (sig == SIGHUP) {
            reopen_files();
            reload_tls();
          } else if (sig != 0) {
            return sig;
          }
          break;
        }
        case SlotKind::kWake: writer_->clear_wake(); break;
        case SlotKind::kListener: accept_from(ev.fd, now); break;
        case SlotKind::kClient:
          if (!ev.session->done()) ev.session->on_client_event(ev.revents);
          touch(ev.session);
          break;
        case SlotKind::kServer:
          if (!ev.session->done()) ev.session->on_server_event(ev.revents);
          touch(ev.session);
          break;
        case SlotKind::kMetricsListener:
        case SlotKind::kMetricsConnection: on_metrics_event(ev, now); break;
      }
      // Many busy sessions in one wake-up: hand over in pieces, so the batch
      // stays small and the writer's queue limit stays meaningful.
      if (batch_.size() >= kBatchSubmitBytes) maybe_submit(now, true);
    }
    if (next_deadline_ != 0 && now >= next_deadline_) {
      next_deadline_ = 0;
      for (auto& s : sessions_) s->on_timer(now);
      touch_all();
    }
    for (ProxySession* s : ctx_.dirty) touch(s);  // its output, sent now, decides its POLLOUT
    sends_->flush(ctx_.dirty);
    maybe_submit(now, false);  // before update_interest: a full queue throttles the next round already
    if (opts_.rotate_size != 0) check_rotation_size();
    if (next_housekeeping_ms_ != 0 && now >= next_housekeeping_ms_) housekeeping(now);
    update_interest();
    reap();
    if (next_stats_ms_ != 0 && now >= next_stats_ms_) report_stats(now);
    if (metrics_ && metrics_->next_deadline() != 0 && now >= metrics_->next_deadline()) {
      for (auto [fd, serial] : metrics_->expire(now)) {
        if (epoll_) epoll_->remove(fd, metrics_key(serial));
      }
    }
  }
}

// With epoll, a session is looked at again only when something happened to
// it: what it wants from the kernel can change only then (or when the
// writer's backlog starts or stops throttling every session).
void Proxy::touch(ProxySession* s) {
  if (!epoll_) return;
  ProxySession::WaitState& w = s->wait_state();
  if (w.touched) return;
  w.touched = true;
  touched_.push_back(s);
}

void Proxy::touch_all() {
  for (auto& s : sessions_) touch(s.get());
}

void Proxy::update_interest() {
  if (!epoll_) return;
  if (bool throttled = writer_->should_throttle(); throttled != throttled_) {
    throttled_ = throttled;
    touch_all();
  }
  for (ProxySession* s : touched_) {
    s->wait_state().touched = false;
    if (!s->done()) update_session_interest(*s);  // an ended one is forgotten in reap()
    if (s->done()) reap_needed_ = true;
  }
  touched_.clear();
}

void Proxy::update_session_interest(ProxySession& s) {
  ProxySession::WaitState& w = s.wait_state();
  const int cfd = s.client_fd();
  const int sfd = s.server_fd();
  if (!update_registration(s, w.client, cfd, cfd >= 0 ? s.client_events(throttled_) : 0, client_key(s),
                           SlotKind::kClient) ||
      !update_registration(s, w.server, sfd, sfd >= 0 ? s.server_events(throttled_) : 0, server_key(s),
                           SlotKind::kServer)) {
    return;
  }
  if (int64_t d = s.deadline_ms(); d != 0 && (next_deadline_ == 0 || d < next_deadline_)) next_deadline_ = d;
}

// One socket of a session: a new socket (or none) drops the old registration;
// changed events are passed on. False if the kernel refused, and the session ended.
bool Proxy::update_registration(ProxySession& s, ProxySession::Registration& reg, int fd, short events, uint64_t key,
                                SlotKind kind) {
  if (reg.fd != fd || reg.key != key) {
    epoll_->remove(reg.fd, reg.key);
    reg = ProxySession::Registration{fd, key, 0};
  }
  if (fd < 0 || events == reg.events) return true;
  if (!epoll_->set(fd, events, key, uint8_t(kind), &s)) {
    cannot_wait(s, kind == SlotKind::kClient ? "client" : "server");
    return false;
  }
  reg.events = events;
  return true;
}

// A socket the kernel will not wait for (epoll_ctl failed: out of memory,
// or past fs.epoll.max_user_watches) would leave its session hanging: the
// session ends instead, its pending statements logged with an unknown outcome.
void Proxy::cannot_wait(ProxySession& s, const char* side) {
  const std::string why = fmt::format("epoll_ctl on its {} socket: {}", side, pgwire::errno_text(errno));
  ++ctx_.stats.errors;
  diag("session {}: ending it: {}", s.id(), why);
  s.abort(why);
}

void Proxy::update_listening(int64_t now) {
  if (!epoll_) return;
  if (metrics_ && metrics_->listening(now) != metrics_listening_) {
    metrics_listening_ = !metrics_listening_;
    for (int fd : metrics_->listen_fds()) {
      if (!epoll_->set(fd, metrics_listening_ ? POLLIN : 0, proxy_key(SlotKind::kMetricsListener, fd),
                       uint8_t(SlotKind::kMetricsListener), nullptr)) {
        ++ctx_.stats.errors;
        diag("metrics: epoll_ctl on a listening socket: {}", pgwire::errno_text(errno));
      }
    }
  }
  const bool want = now >= listen_paused_until_ms_ && !listeners_.empty();
  if (want == listening_) return;
  bool ok = true;
  for (int fd : listeners_) {
    ok =
        epoll_->set(fd, want ? POLLIN : 0, proxy_key(SlotKind::kListener, fd), uint8_t(SlotKind::kListener), nullptr) &&
        ok;
  }
  listening_ = want;
  if (!ok) {
    // As for accept() errors: keep serving the sessions we have and try again in a moment.
    const int err = errno;
    for (int fd : listeners_) epoll_->remove(fd, proxy_key(SlotKind::kListener, fd));
    listening_ = false;
    listen_paused_until_ms_ = now + kAcceptBackoffMs;
    ++ctx_.stats.errors;
    if (now - last_accept_diag_ms_ >= 1000) {
      diag("epoll_ctl on the listening sockets: {}; not accepting for {} ms", pgwire::errno_text(err),
           kAcceptBackoffMs);
      last_accept_diag_ms_ = now;
    }
  }
}

void Proxy::accept_from(int listen_fd, int64_t now) {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: stop accepting for a moment and keep
      // serving the sessions we have; the kernel queues new clients meanwhile.
      ++ctx_.stats.errors;
      ++accept_errors_unreported_;
      if (now - last_accept_diag_ms_ >= 1000) {  // a storm of these must not flood stderr
        diag("accept: {}; pausing accepts for {} ms each time ({} times since the last report; {} sessions open)",
             pgwire::errno_text(err), kAcceptBackoffMs, accept_errors_unreported_, sessions_.size());
        last_accept_diag_ms_ = now;
        accept_errors_unreported_ = 0;
      }
      listen_paused_until_ms_ = now + kAcceptBackoffMs;
      return;
    }
    pgwire::set_nodelay(fd, ss.ss_family);
    std::string client = pgwire::format_address(reinterpret_cast<const sockaddr*>(&ss), len);
    uint64_t id = ++next_session_id_;
    ++ctx_.stats.accepted;
    if (ctx_.stats.active >= opts_.max_connections) {
      ++ctx_.stats.rejected;
      if (now - last_reject_diag_ms_ >= 1000) {  // at most one line a second: this can come in floods
        diag("refusing {} (and any more within a second): --max-connections {} reached; {} refused so far", client,
             opts_.max_connections, ctx_.stats.rejected);
        last_reject_diag_ms_ = now;
      }
      if (rejecting_ >= kMaxRejecting) {
        close(fd);  // refusing politely costs a descriptor too; past this, just close
        continue;
      }
      ++rejecting_;
      sessions_.push_back(std::make_unique<ProxySession>(
          ctx_, id, fd, std::move(client),
          fmt::format("too many connections (pgproxy --max-connections {})", opts_.max_connections)));
      touch(sessions_.back().get());
      continue;
    }
    ++ctx_.stats.active;
    sessions_.push_back(std::make_unique<ProxySession>(ctx_, id, fd, std::move(client)));
    touch(sessions_.back().get());
  }
}

void Proxy::close_listeners() {
  if (epoll_ && listening_) {
    for (int fd : listeners_) epoll_->remove(fd, proxy_key(SlotKind::kListener, fd));
    listening_ = false;
  }
  for (int fd : listeners_) close(fd);
  listeners_.clear();
  for (const auto& path : socket_files_) (void)unlink(path.c_str());
  socket_files_.clear();
}

int Proxy::read_signal() {
  signalfd_siginfo si{};
  ssize_t n = read(signal_fd_, &si, sizeof si);
  if (n != sizeof si) return 0;
  return static_cast<int>(si.ssi_signo);
}

void Proxy::reopen_files() {
  diag("SIGHUP: reopening the SQL log and the capture");
  maybe_submit(0, true);
  batch_.reopen = true;
  // The new capture file starts with a header; repeat each open session's
  // opening so a reader of the new file knows them.
  for (auto& s : sessions_) s->capture_reopened();
  writer_->submit(batch_);
  batch_since_ms_ = 0;
  log_bytes_ = 0;
  capture_bytes_ = 0;
  reannounced_bytes_ = 0;
}

// Closes the current SQL log and/or capture under their rotated names: what
// is batched so far goes to the old files, a new capture begins with the
// sessions still open re-announced (as after SIGHUP).
void Proxy::start_new_files(bool log, bool capture) {
  if (!log && !capture) return;
  maybe_submit(0, true);
  batch_.rotate_log = log;
  batch_.rotate_capture = capture;
  if (log) log_bytes_ = 0;
  if (capture) {
    capture_bytes_ = 0;
    size_t before = batch_.capture.size();
    for (auto& s : sessions_) s->capture_reopened();
    reannounced_bytes_ = batch_.capture.size() - before;
  }
  writer_->submit(batch_);
  batch_since_ms_ = 0;
}

void Proxy::check_rotation_size() {
  bool log = writer_->log_rotatable() && log_bytes_ >= opts_.rotate_size;
  bool capture = writer_->capture_rotatable() && capture_bytes_ >= opts_.rotate_size;
  start_new_files(log, capture);
}

// Once a second: the rotation interval, and a capture that stopped working
// (a full disk) is given a new file, so that recording resumes when the
// disk has room again.
void Proxy::housekeeping(int64_t now) {
  next_housekeeping_ms_ = now + 1000;
  bool log = false;
  bool capture = false;
  if (next_rotation_ns_ != 0) {
    int64_t real = pgwire::realtime_ns();
    if (real >= next_rotation_ns_) {
      next_rotation_ns_ = next_rotation_ns(real, opts_.rotate_interval_s);
      // Nothing written since the last one: no empty file.
      log = writer_->log_rotatable() && log_bytes_ > 0;
      capture = writer_->capture_rotatable() && capture_bytes_ > 0;
    }
  }
  if (writer_->capture_down()) capture = true;
  start_new_files(log, capture);
}

void Proxy::reap() {
  if (epoll_ && !reap_needed_) return;
  reap_needed_ = false;
  auto it = std::remove_if(sessions_.begin(), sessions_.end(), [this](const std::unique_ptr<ProxySession>& s) {
    if (!s->done()) return false;
    if (epoll_) {
      const ProxySession::WaitState& w = s->wait_state();
      epoll_->remove(w.client.fd, w.client.key);
      epoll_->remove(w.server.fd, w.server.key);
    }
    if (s->counted()) {
      --ctx_.stats.active;
    } else {
      --rejecting_;
    }
    return true;
  });
  sessions_.erase(it, sessions_.end());
}

void Proxy::maybe_submit(int64_t now, bool force) {
  if (batch_.empty()) {
    batch_since_ms_ = 0;
    return;
  }
  if (batch_since_ms_ == 0) batch_since_ms_ = now;
  if (force || batch_.size() >= kBatchSubmitBytes || now - batch_since_ms_ >= kBatchMaxAgeMs) {
    log_bytes_ += batch_.log.size();
    capture_bytes_ += batch_.capture.size() - reannounced_bytes_;
    reannounced_bytes_ = 0;
    writer_->submit(batch_);
    batch_since_ms_ = 0;
  }
}

void Proxy::report_stats(int64_t now) {
  double secs = static_cast<double>(std::max<int64_t>(1, now - last_stats_ms_)) / 1000.0;
  const ProxyStats& s = ctx_.stats;
  const WriterStats& w = writer_->stats();
  auto rate = [secs](uint64_t now_v, uint64_t then_v) { return static_cast<double>(now_v - then_v) / secs; };
  diag(
      "stats: connections={} accepted={} rejected={} statements/s={:.1f} client_bytes/s={:.0f} "
      "server_bytes/s={:.0f} wakeups/s={:.0f} ready_per_wakeup={:.2f} errors={} lost_lines={} lost_records={} "
      "writer_queue_bytes={}{}{}{}",
      s.active, s.accepted, s.rejected, rate(s.statements, last_stats_.statements),
      rate(s.client_bytes, last_stats_.client_bytes), rate(s.server_bytes, last_stats_.server_bytes),
      rate(s.polls, last_stats_.polls),
      s.polls == last_stats_.polls
          ? 0.0
          : static_cast<double>(s.ready - last_stats_.ready) / static_cast<double>(s.polls - last_stats_.polls),
      s.errors + w.write_errors.load(), w.lines_lost.load(), w.records_lost.load(), writer_->queued_bytes(),
      ctx_.client_tls || ctx_.server_tls
          ? fmt::format(" tls_clients={} tls_servers={} tls_failures={} channel_binding_removed={}", s.tls_clients,
                        s.tls_servers, s.tls_failures, s.channel_binding_removed)
          : std::string(),
      epoll_ && epoll_->stale_events() > 0 ? fmt::format(" epoll_stale_events={}", epoll_->stale_events())
                                           : std::string(),
      throttled_ ? " (throttled: the writer is behind)" : "");
  last_stats_ = s;
  last_stats_ms_ = now;
  next_stats_ms_ = now + stats_every_ms_;
}

// --log-user, --log-database, --log-application, --log-min-duration-ms,
// --log-params, --log-max-query-bytes.
bool Proxy::setup_log_selection() {
  std::string error;
  if (!log_filter_.add_patterns(LogFilter::Field::kUser, opts_.log_users, error) ||
      !log_filter_.add_patterns(LogFilter::Field::kDatabase, opts_.log_databases, error) ||
      !log_filter_.add_patterns(LogFilter::Field::kApplication, opts_.log_applications, error)) {
    diag("{}", error);
    return false;
  }
  log_filter_.set_min_duration_ns(static_cast<int64_t>(opts_.log_min_duration_ms * 1e6));
  if (log_filter_.filters_sessions() || opts_.log_min_duration_ms > 0) ctx_.log_filter = &log_filter_;
  if (opts_.capture_filter_same) {
    if (!log_filter_.filters_sessions()) {
      diag("--capture-filter-same needs --log-user, --log-database or --log-application");
      return false;
    }
    ctx_.capture_filter = &log_filter_;
  }
  if (opts_.log_params == "redacted") {
    ctx_.log_params = pgwire::ParamLogging::kRedacted;
  } else if (opts_.log_params == "none") {
    ctx_.log_params = pgwire::ParamLogging::kNone;
  } else if (opts_.log_params != "full") {
    diag("--log-params must be full, redacted or none");
    return false;
  }
  ctx_.tracker.max_sql_bytes = opts_.log_max_query_bytes;
  return true;
}

// --metrics-listen: a scraper's connection, or the listening socket.
void Proxy::on_metrics_event(const Event& ev, int64_t now) {
  if (ev.kind == SlotKind::kMetricsListener) {
    int err = 0;
    for (MetricsConnection* c : metrics_->accept_all(ev.fd, now, err)) watch_metrics_connection(*c);
    if (err != 0) {
      ++ctx_.stats.errors;
      if (now - last_accept_diag_ms_ >= 1000) {
        diag("metrics: accept: {}; not accepting scrapers for {} ms", pgwire::errno_text(err),
             MetricsEndpoint::kAcceptPauseMs);
        last_accept_diag_ms_ = now;
      }
    }
    return;
  }
  const auto& conns = metrics_->connections();
  auto it = std::find_if(conns.begin(), conns.end(), [&](const auto& c) { return c->fd == ev.fd; });
  if (it == conns.end()) return;
  MetricsConnection& c = **it;
  const int fd = c.fd;
  const uint64_t serial = c.serial;
  const short before = MetricsEndpoint::events(c);
  if (!metrics_->on_event(c, ev.revents, [this](std::string& out) { render_metrics_text(out); })) {
    if (epoll_) epoll_->remove(fd, metrics_key(serial));
    return;
  }
  if (MetricsEndpoint::events(c) != before) watch_metrics_connection(c);
}

void Proxy::watch_metrics_connection(MetricsConnection& c) {
  if (!epoll_) return;  // poll(): the set is built each round
  if (!epoll_->set(c.fd, MetricsEndpoint::events(c), metrics_key(c.serial), uint8_t(SlotKind::kMetricsConnection),
                   nullptr)) {
    // Not waited for, it would sit until its deadline: give it up now.
    ++ctx_.stats.errors;
    diag("metrics: epoll_ctl: {}; closing a scraper's connection", pgwire::errno_text(errno));
    const int fd = c.fd;
    const uint64_t serial = c.serial;
    metrics_->drop(c);
    epoll_->remove(fd, metrics_key(serial));
  }
}

void Proxy::render_metrics_text(std::string& out) const {
  const ProxyStats& s = ctx_.stats;
  const WriterStats& w = writer_->stats();
  MetricsSnapshot m;
  m.start_time_seconds = start_time_seconds_;
  m.client_sessions_open = s.active;
  m.client_sessions_total = s.accepted;
  m.client_sessions_refused = s.rejected;
  for (const auto& session : sessions_) {
    if (!session->done() && session->server_fd() >= 0) ++m.server_sessions_open;
  }
  m.server_sessions_total = s.servers_connected;
  m.client_bytes = s.client_bytes;
  m.server_bytes = s.server_bytes;
  m.errors = s.errors + w.write_errors.load();
  m.log_lines_written = w.lines_written.load();
  m.log_lines_lost = w.lines_lost.load();
  m.capture_records_written = w.records_written.load();
  m.capture_records_lost = w.records_lost.load();
  m.writer_queue_bytes = writer_->queued_bytes();
  m.rounds = s.polls;
  m.ready_events = s.ready;
  m.tls = ctx_.client_tls != nullptr || ctx_.server_tls != nullptr;
  m.tls_client_handshakes = s.tls_clients;
  m.tls_server_handshakes = s.tls_servers;
  m.tls_failures = s.tls_failures;
  m.channel_binding_removed = s.channel_binding_removed;
  m.scrapes = metrics_->responses();
  m.not_logged_session = s.not_logged_session;
  m.not_logged_duration = s.not_logged_duration;
  m.not_captured_sessions = s.not_captured_sessions;
  m.log_rotations = w.log_rotations.load();
  m.capture_rotations = w.capture_rotations.load();
  m.capture_restarts = w.capture_restarts.load();
  m.has_capture = writer_->has_capture();
  m.capture_down = writer_->capture_down();
  const ClosedFileStats& cf = writer_->closed_file_stats();
  m.files_compressed = cf.compressed.load();
  m.compress_errors = cf.compress_errors.load();
  m.files_removed = cf.removed.load();
  m.statements = &statement_metrics_;
  render_metrics(m, out);
}

// One last non-blocking look at every session before they are ended: bytes
// that already arrived (a client's Terminate in flight, the server's last
// responses) are forwarded, logged and captured rather than dropped.
void Proxy::final_sweep() {
  int64_t now = pgwire::monotonic_ms();
  int64_t next_deadline = 0;
  build_poll_set(now, next_deadline);
  if (poll(pfds_.data(), pfds_.size(), 0) > 0) {
    for (size_t i = 0; i < pfds_.size(); ++i) {
      short re = pfds_[i].revents;
      const Slot& slot = slots_[i];
      if (re == 0 || slot.session == nullptr || slot.session->done()) continue;
      if (slot.kind == SlotKind::kClient) slot.session->on_client_event(re);
      if (slot.kind == SlotKind::kServer) slot.session->on_server_event(re);
    }
  }
  // Also what the round a signal interrupted had queued.
  sends_->flush(ctx_.dirty);
}

// First SIGINT/SIGTERM: stop accepting, end the sessions (their pending
// requests are logged with an unknown outcome), let the writer finish, exit 0.
// A second one exits at once.
int Proxy::stop(int sig) {
  diag("{}: stopping; {} sessions open, finishing the SQL log and capture (send again to exit at once)",
       signal_name(static_cast<uint32_t>(sig)), ctx_.stats.active);
  close_listeners();
  metrics_.reset();  // scrapers are not answered while the files are finished
  ctx_.metrics = nullptr;
  final_sweep();
  for (auto& s : sessions_) s->abort("proxy shutdown");
  sessions_.clear();
  maybe_submit(0, true);
  writer_->begin_stop();
  while (!writer_->finished()) {
    pollfd p[2] = {{signal_fd_, POLLIN, 0}, {writer_->wake_fd(), POLLIN, 0}};
    (void)poll(p, 2, 1000);
    if (p[1].revents) writer_->clear_wake();
    if (p[0].revents) {
      int again = read_signal();
      if (again == SIGINT || again == SIGTERM) {
        diag("{} again: exiting at once; the SQL log and capture may be incomplete",
             signal_name(static_cast<uint32_t>(again)));
        _exit(128 + again);
      }
    }
  }
  writer_->join();
  const WriterStats& w = writer_->stats();
  diag(
      "exiting: sessions={} statements={} lines_written={} records_written={} errors={} lost_lines={} "
      "lost_records={}",
      ctx_.stats.accepted, ctx_.stats.statements, w.lines_written.load(), w.records_written.load(),
      ctx_.stats.errors + w.write_errors.load(), w.lines_lost.load(), w.records_lost.load());
  return 0;
}

}  // namespace

int run_proxy(const ProxyOptions& opts) {
  Proxy proxy(opts);
  return proxy.run();
}

}  // namespace pgproxy
