// --dry-run: the capture read and scheduled exactly as a replay would, with
// one line per session event and per statement instead of connections.
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "pgwire/capture_merge.hpp"
#include "pgwire/session_monitor.hpp"
#include "pgwire/text.hpp"
#include "replayer.hpp"
#include "report.hpp"
#include "schedule.hpp"

namespace pgreplay {

namespace {

struct DrySession {
  explicit DrySession(int64_t ts) : model(ts) {}
  SessionModel model;
  bool announced = false;
  bool partial = false;  // began before the capture data read
};

class DryRun {
 public:
  explicit DryRun(const ReplayOptions& opts) : opts_(opts), login_notice_(opts) {}

  int run() {
    reader_.set_pcap_options(pcap_options(opts_));
    std::vector<std::string> errors = reader_.open(opts_.captures);
    for (const std::string& e : errors) fmt::print(stderr, "pgreplay: cannot open {}\n", e);
    if (reader_.files() == 0 || !errors.empty()) {
      for (const auto& d : reader_.damage()) fmt::print(stderr, "pgreplay: {}: {}\n", d.file, d.error.describe());
      return kExitUsage;
    }
    for (const std::string& w : reader_.warnings()) fmt::print(stderr, "pgreplay: warning: {}\n", w);
    pgwire::CaptureDecoder::Callbacks cb;
    cb.event = [this](const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info) { statement(ev, info); };
    cb.error = [](const pgwire::SessionInfo& info, const pgwire::Error& e) {
      fmt::print(stderr, "pgreplay: captured session {} cannot be decoded: {}\n", info.session_id, e.describe());
    };
    cb.partial = [this](const pgwire::SessionInfo& info, int64_t) {
      if (auto it = sessions_.find(info.session_id); it != sessions_.end()) it->second->partial = true;
    };
    pgwire::TrackerOptions topts;
    decoder_ = std::make_unique<pgwire::CaptureDecoder>(topts, std::move(cb));
    while (const pgwire::CaptureRecord* rec = reader_.next()) on_record(*rec);
    decoder_->finish(last_);
    for (auto& [id, s] : sessions_) end_line(id, *s, last_, "capture ended");
    for (const auto& d : reader_.damage()) {
      fmt::print(stderr, "pgreplay: {}: damaged: {}\n", d.file, d.error.describe());
      damaged_ = true;
    }
    const double span = static_cast<double>(last_ - t0_) / 1e9;
    std::string when = opts_.speed_max ? std::string("as fast as the server answers")
                                       : fmt::format("about {:.3f} s", span / opts_.speed);
    out(
        fmt::format("dry run: {} sessions ({} cancel requests, {} not replayable), {} frames, {} bytes, {} statements; "
                    "the capture spans {:.3f} s, the replay would take {}; at most {} sessions at once",
                    sessions_seen_, cancels_, unreplayable_, frames_, bytes_, statements_, span, when, max_open_));
    std::fflush(stdout);
    return damaged_ ? kExitDamagedCapture : kExitOk;
  }

 private:
  double offset(int64_t ts) const {
    const double d = static_cast<double>(ts - t0_) / 1e9;
    return opts_.speed_max ? d : d / opts_.speed;
  }
  void out(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
  }

  void on_record(const pgwire::CaptureRecord& rec) {
    if (!have_t0_) {
      have_t0_ = true;
      t0_ = rec.ts_ns;
    }
    if (rec.ts_ns > last_) last_ = rec.ts_ns;
    auto& slot = sessions_[rec.session_id];
    if (!slot) {
      slot = std::make_unique<DrySession>(rec.ts_ns);
      ++sessions_seen_;
      ++open_;
      if (open_ > max_open_) max_open_ = open_;
    }
    DrySession& s = *slot;
    if (rec.type != pgwire::CaptureRecordType::kSessionClose) decoder_->on_record(rec);
    switch (rec.type) {
      case pgwire::CaptureRecordType::kSessionOpen: return;
      case pgwire::CaptureRecordType::kSessionMeta:
        s.model.on_meta(rec.key, rec.value);
        if (s.model.has_backend_key()) pids_[s.model.backend_pid()] = rec.session_id;
        return;
      case pgwire::CaptureRecordType::kSessionClose:
        decoder_->on_record(rec);
        end_line(rec.session_id, s, rec.ts_ns, rec.reason);
        sessions_.erase(rec.session_id);
        return;
      case pgwire::CaptureRecordType::kFrame: break;
    }
    auto pf = s.model.on_frame(rec);
    if (s.model.has_backend_key()) pids_[s.model.backend_pid()] = rec.session_id;
    if (pf) {
      ++frames_;
      bytes_ += pf->data.size();
    }
    if (s.announced) return;
    if (s.model.kind() == SessionModel::Kind::kStartup) {
      s.announced = true;
      auto [user, db] = resolve_login(opts_, s.model.param("user"), s.model.param("database"));
      for (const std::string& w : login_notice_.check(s.model.param("user"), s.model.param("database"), user, db))
        fmt::print(stderr, "pgreplay: warning: {}\n", w);
      std::string line = fmt::format("+{:.6f} session {} connect user={} database={}", offset(s.model.open_ts()),
                                     rec.session_id, user, db);
      for (const auto& [k, v] : s.model.params()) {
        if (k == "user" || k == "database") continue;
        line += " " + k + "=";
        pgwire::append_escaped(line, v);
      }
      line += fmt::format(" protocol=3.{}", pgwire::protocol_minor(s.model.protocol()));
      out(line);
    } else if (s.model.kind() == SessionModel::Kind::kCancel) {
      s.announced = true;
      ++cancels_;
      auto t = pids_.find(s.model.cancel_pid());
      out(fmt::format("+{:.6f} session {} cancel request for backend pid {}{}", offset(s.model.startup_ts()),
                      rec.session_id, s.model.cancel_pid(),
                      t != pids_.end() ? fmt::format(" (session {})", t->second)
                                       : std::string(" (no captured session had that pid: would be skipped)")));
    } else if (s.model.kind() == SessionModel::Kind::kEncrypted) {
      s.announced = true;
      ++unreplayable_;
      out(fmt::format("+{:.6f} session {} encrypted: would be skipped", offset(s.model.open_ts()), rec.session_id));
    }
  }

  void end_line(uint64_t id, DrySession& s, int64_t ts, std::string_view reason) {
    if (open_ > 0) --open_;
    if (!s.announced) {
      ++unreplayable_;
      out(fmt::format("+{:.6f} session {} {}: would be skipped", offset(s.model.open_ts()), id,
                      s.partial ? "is partial (began before the capture data read)" : "has no startup packet"));
      return;
    }
    if (s.model.kind() != SessionModel::Kind::kStartup) return;
    std::string why;
    pgwire::append_escaped(why, reason);
    out(fmt::format(
        "+{:.6f} session {} end ({} frames, {} bytes, waits {}{}){}", offset(ts), id, s.model.frames_planned(),
        s.model.bytes_planned(), s.model.exact() ? "exact" : "inferred from timestamps",
        s.model.login_failed() ? ", login failed in the capture" : "", why.empty() ? std::string() : ": " + why));
  }

  void statement(const pgwire::StatementEvent& ev, const pgwire::SessionInfo& info) {
    ++statements_;
    std::string line = fmt::format("+{:.6f} session {} {}: ", offset(ev.start_ns), info.session_id,
                                   pgwire::statement_kind_name(ev.kind));
    pgwire::append_escaped(line, ev.sql);
    if (!ev.params.empty()) line += " params: " + format_params(ev.params);
    if (ev.outcome != pgwire::Outcome::kUnknown) line += " -> captured: " + describe_outcome(ev);
    out(line);
  }

  const ReplayOptions& opts_;
  EnvironmentLoginNotice login_notice_;
  pgwire::MergedReader reader_;
  std::unique_ptr<pgwire::CaptureDecoder> decoder_;
  std::unordered_map<uint64_t, std::unique_ptr<DrySession>> sessions_;
  std::unordered_map<int32_t, uint64_t> pids_;
  bool have_t0_ = false;
  bool damaged_ = false;
  int64_t t0_ = 0;
  int64_t last_ = 0;
  uint64_t sessions_seen_ = 0, cancels_ = 0, unreplayable_ = 0, frames_ = 0, bytes_ = 0, statements_ = 0;
  uint64_t open_ = 0, max_open_ = 0;
};

}  // namespace

int run_dry_run(const ReplayOptions& opts) {
  DryRun d(opts);
  return d.run();
}

}  // namespace pgreplay
