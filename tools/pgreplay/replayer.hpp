// The replay engine: one poll() loop, one small state machine per session.
//
// The captures are read as a stream (MergedReader, timestamp order) no
// further ahead than --read-ahead seconds of schedule, and never while a
// session that could make progress holds more than --session-buffer bytes of
// read-ahead or all together more than --max-memory: memory follows the
// number of concurrent sessions, not the size of the capture.
//
// Each captured session with a StartupMessage is replayed on its own
// connection, opened at its captured time offset (divided by --speed), with
// the captured startup parameters (user and database possibly overridden or
// mapped). pgreplay authenticates itself (trust, password, md5,
// SCRAM-SHA-256); the captured authentication frames are never sent. Once
// the login's ReadyForQuery arrives, the captured frontend frames are written
// byte for byte, each no earlier than its scheduled time and only after the
// replay server has sent the milestones (ReadyForQuery, CopyInResponse, ...)
// the original client had received before it (see schedule.hpp).
//
// A captured CancelRequest is sent on a new connection, with the replayed
// session's own BackendKeyData, to the session whose captured BackendKeyData
// had the cancelled pid, once that session has sent what it had sent when the
// cancel was captured.
//
// Sessions never wait for each other. A session waiting for a milestone from
// a server that owes it nothing (every Query/Sync answered) is released at
// once (the capture and the replay diverged); one waiting on a server that
// has been silent after a ReadyForQuery for --stall-timeout is released too.
//
// The parts, each owning its share of a ReplaySession (replay_session.hpp):
// capture_feed (reading the capture, budgets, sessions, cancel targets),
// replay_connection (one server connection: connect, login, I/O),
// statement_match (--compare's pairing of captured and replayed statements),
// and the loop: replayer.cpp (poll, timers, starting sessions, progress,
// report) with session_pacing.cpp (one session's frames released when due).
#pragma once

#include "options.hpp"

namespace pgreplay {

// Runs the replay and prints the report; returns the exit code.
int run_replay(const ReplayOptions& opts);

// --dry-run: reads and schedules everything, prints one line per session and
// per statement, connects nowhere.
int run_dry_run(const ReplayOptions& opts);

}  // namespace pgreplay
