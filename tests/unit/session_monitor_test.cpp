// SessionMonitor, the one framing-and-tracking step, and CaptureDecoder on top
// of it: what a proxy needs from it (local answers, where its own messages may
// go) and what a reader of older captures needs (the inferred answer).
#include "pgwire/session_monitor.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "wire_builder.hpp"

namespace pgwire {
namespace {

using test::W;
using test::Wire;

Wire ssl_request() { return W().i32(8).i32(80877103); }
Wire startup() { return W().startup({{"user", "alice"}, {"database", "shop"}}); }
Wire ready() { return W().msg('Z', W().byte('I')); }

struct Collected {
  std::vector<StatementEvent> events;
  ConnectionTracker::Sink sink() {
    return [this](const StatementEvent& ev, const SessionInfo&) { events.push_back(ev); };
  }
};

TEST(SessionMonitor, NextFramesOneFrameAtATimeAndTracksIt) {
  Collected c;
  SessionMonitor m(TrackerOptions{}, c.sink());
  Wire fe = W().append(startup()).msg('Q', W().str("SELECT 1"));
  Bytes in{fe.bytes()};
  FrameResult r = m.next(Direction::kFrontend, in, 10);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(startup_request(r.frame()), StartupRequest::kStartup);
  EXPECT_EQ(m.tracker().session().user, "alice");
  r = m.next(Direction::kFrontend, in, 20);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().type, 'Q');
  EXPECT_TRUE(in.empty());
  EXPECT_TRUE(m.next(Direction::kFrontend, in, 20).needs_more());
  Wire be = W().msg('R', W().i32(0)).msg('C', W().str("SELECT 1")).append(ready());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{be.bytes()}, 30).ok());
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0].sql, "SELECT 1");
  EXPECT_EQ(c.events[0].outcome, Outcome::kOk);
  EXPECT_EQ(c.events[0].start_ns, 20);
  EXPECT_EQ(c.events[0].end_ns, 30);
}

TEST(SessionMonitor, StartupRequestsAreTold) {
  SessionMonitor m(TrackerOptions{}, nullptr);
  Wire ssl = ssl_request();
  Bytes in{ssl.bytes()};
  FrameResult r = m.next(Direction::kFrontend, in, 0);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(startup_request(r.frame()), StartupRequest::kEncryption);
  Wire cancel = W().i32(16).i32(80877102).i32(1234).i32(5678);
  SessionMonitor m2(TrackerOptions{}, nullptr);
  Bytes in2{cancel.bytes()};
  r = m2.next(Direction::kFrontend, in2, 0);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(startup_request(r.frame()), StartupRequest::kCancel);
  EXPECT_EQ(m2.tracker().session().backend_pid, 1234);
}

TEST(SessionMonitor, AnswerLocallyOnlyAfterAnEncryptionRequest) {
  SessionMonitor m(TrackerOptions{}, nullptr);
  EXPECT_FALSE(m.awaiting_answer());
  FrameResult r = m.answer_locally(kEncryptionRefused, 0);
  EXPECT_TRUE(r.failed()) << "nothing asked";
  Wire ssl = ssl_request();
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{ssl.bytes()}, 0).ok());
  EXPECT_TRUE(m.awaiting_answer());
  r = m.answer_locally(kEncryptionRefused, 5);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().kind, FrameKind::kAnswer);
  EXPECT_EQ(r.frame().type, 'N');
  EXPECT_TRUE(r.frame().body.empty());
  EXPECT_FALSE(m.awaiting_answer());
  // The client goes on in plaintext, the server starts from its first byte.
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{startup().bytes()}, 6).ok());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{W().msg('R', W().i32(0)).append(ready()).bytes()}, 7).ok());
  EXPECT_TRUE(m.tracker().session().authenticated);
}

TEST(SessionMonitor, BackendBoundaryIsBetweenWholeServerMessages) {
  SessionMonitor m(TrackerOptions{}, nullptr);
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{startup().bytes()}, 0).ok());
  EXPECT_TRUE(m.at_backend_boundary()) << "nothing from the server yet";
  Wire be = W().msg('R', W().i32(0)).append(ready());
  const auto& bytes = be.bytes();
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{bytes}.first(7), 1).ok());  // 'R' whole, 'Z' begun
  EXPECT_FALSE(m.at_backend_boundary());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{bytes}.subspan(7), 2).ok());
  EXPECT_TRUE(m.at_backend_boundary());
}

TEST(SessionMonitor, StopTrackingSettlesWhatIsPendingAsUnknownAndFramingGoesOn) {
  Collected c;
  SessionMonitor m(TrackerOptions{}, c.sink());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{startup().bytes()}, 0).ok());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{W().msg('Q', W().str("SELECT pg_sleep(9)")).bytes()}, 1).ok());
  m.stop_tracking(2);
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0].outcome, Outcome::kUnknown);
  EXPECT_EQ(c.events[0].end_ns, 0) << "an unknown outcome has no duration";
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{W().msg('Q', W().str("SELECT 2")).bytes()}, 3).ok());
  EXPECT_EQ(c.events.size(), 1u) << "no events once tracking stopped";
  EXPECT_FALSE(m.tracking());
}

// A capture record of one frame, as pgproxy writes them.
CaptureRecord frame_record(uint64_t session, int64_t ts, Direction dir, FrameKind kind, const Wire& w) {
  CaptureRecord r;
  r.type = CaptureRecordType::kFrame;
  r.session_id = session;
  r.ts_ns = ts;
  r.direction = dir;
  r.frame_kind = kind;
  r.frame_flags = kFrameFirst | kFrameLast;
  r.data = Bytes{w.bytes()};
  return r;
}

// Regression: captures of pgproxy before it recorded its own 'N' have the
// client's SSLRequest and then its startup packet, nothing in between.
// pgreplay inferred the 'N'; pgdump-log failed to frame the session.
TEST(CaptureDecoder, InfersTheRefusalOlderCapturesLack) {
  std::vector<std::string> sql;
  std::vector<std::string> errors;
  CaptureDecoder::Callbacks cb;
  cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
    EXPECT_EQ(s.user, "alice");
    sql.push_back(ev.sql);
  };
  cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
  CaptureDecoder d(TrackerOptions{}, cb);
  Wire ssl = ssl_request(), start = startup(), auth = W().msg('R', W().i32(0)).append(ready());
  Wire query = W().msg('Q', W().str("SELECT 1")), answer = W().msg('C', W().str("SELECT 1")).append(ready());
  d.on_record(frame_record(1, 1, Direction::kFrontend, FrameKind::kStartup, ssl));
  d.on_record(frame_record(1, 2, Direction::kFrontend, FrameKind::kStartup, start));
  d.on_record(frame_record(1, 3, Direction::kBackend, FrameKind::kTyped, auth));
  d.on_record(frame_record(1, 4, Direction::kFrontend, FrameKind::kTyped, query));
  d.on_record(frame_record(1, 5, Direction::kBackend, FrameKind::kTyped, answer));
  d.finish(6);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(sql, std::vector<std::string>{"SELECT 1"});
  EXPECT_EQ(d.inferred_answers(), 1u);
}

TEST(CaptureDecoder, RecordedAnswerIsNotInferredAgain) {
  std::vector<std::string> errors;
  CaptureDecoder::Callbacks cb;
  cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
  CaptureDecoder d(TrackerOptions{}, cb);
  Wire ssl = ssl_request(), no = W().byte('N'), start = startup();
  d.on_record(frame_record(1, 1, Direction::kFrontend, FrameKind::kStartup, ssl));
  d.on_record(frame_record(1, 2, Direction::kBackend, FrameKind::kAnswer, no));
  d.on_record(frame_record(1, 3, Direction::kFrontend, FrameKind::kStartup, start));
  d.finish(4);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(d.inferred_answers(), 0u);
}

CaptureRecord meta_record(uint64_t session, int64_t ts, std::string_view key, const std::string& value) {
  CaptureRecord r;
  r.type = CaptureRecordType::kSessionMeta;
  r.session_id = session;
  r.ts_ns = ts;
  r.key = key;
  r.value = Bytes{reinterpret_cast<const std::byte*>(value.data()), value.size()};
  return r;
}

// pgproxy with --tls-cert answers 'S' and hands the monitor the decrypted
// stream: the startup packet and everything after it, in plaintext.
TEST(SessionMonitor, AfterTlsTerminatedTheDecryptedStreamIsFramedAndTracked) {
  Collected c;
  SessionMonitor m(TrackerOptions{}, c.sink());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{ssl_request().bytes()}, 0).ok());
  FrameResult r = m.answer_locally(kEncryptionAccepted, 1);
  ASSERT_TRUE(r.has_frame());
  EXPECT_EQ(r.frame().kind, FrameKind::kAnswer);
  EXPECT_EQ(r.frame().type, 'S');
  EXPECT_TRUE(m.framer().frontend().encrypted()) << "after 'S' the bytes are TLS until said otherwise";
  m.tls_terminated();
  EXPECT_FALSE(m.framer().frontend().encrypted());
  EXPECT_FALSE(m.framer().backend().encrypted());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{startup().bytes()}, 2).ok());
  EXPECT_EQ(m.tracker().session().user, "alice");
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{W().msg('R', W().i32(0)).append(ready()).bytes()}, 3).ok());
  ASSERT_TRUE(m.feed(Direction::kFrontend, Bytes{W().msg('Q', W().str("SELECT 1")).bytes()}, 4).ok());
  ASSERT_TRUE(m.feed(Direction::kBackend, Bytes{W().msg('C', W().str("SELECT 1")).append(ready()).bytes()}, 5).ok());
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0].sql, "SELECT 1");
  EXPECT_EQ(c.events[0].outcome, Outcome::kOk);
  EXPECT_TRUE(m.at_backend_boundary());
}

// The capture of such a session: SSLRequest, 'S', the client_tls record,
// then the decrypted frames. Without the record the frames after 'S' are
// encrypted bytes to a reader, and nothing is made up from them.
TEST(CaptureDecoder, ClientTlsRecordMakesTheFramesAfterSDecrypted) {
  for (bool with_meta : {true, false}) {
    SCOPED_TRACE(with_meta ? "with client_tls" : "without client_tls");
    std::vector<std::string> sql;
    std::vector<std::string> tls;
    std::vector<std::string> errors;
    CaptureDecoder::Callbacks cb;
    cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
      sql.push_back(ev.sql);
      tls.push_back(s.client_tls + "/" + s.server_tls);
    };
    std::vector<std::string> metas;
    cb.session_meta = [&](const SessionInfo&, int64_t, std::string_view key, Bytes value) {
      metas.push_back(std::string(key) + "=" + std::string(as_string_view(value)));
    };
    cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
    CaptureDecoder d(TrackerOptions{}, cb);
    Wire ssl = ssl_request(), yes = W().byte('S'), start = startup();
    Wire auth = W().msg('R', W().i32(0)).append(ready());
    Wire query = W().msg('Q', W().str("SELECT 1")), answer = W().msg('C', W().str("SELECT 1")).append(ready());
    d.on_record(frame_record(1, 1, Direction::kFrontend, FrameKind::kStartup, ssl));
    d.on_record(frame_record(1, 2, Direction::kBackend, FrameKind::kAnswer, yes));
    if (with_meta) {
      d.on_record(meta_record(1, 3, kMetaClientTls, "TLSv1.3 TLS_AES_256_GCM_SHA384"));
      d.on_record(meta_record(1, 3, kMetaServerTls, "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"));
    }
    d.on_record(frame_record(1, 4, Direction::kFrontend, FrameKind::kStartup, start));
    d.on_record(frame_record(1, 5, Direction::kBackend, FrameKind::kTyped, auth));
    d.on_record(frame_record(1, 6, Direction::kFrontend, FrameKind::kTyped, query));
    d.on_record(frame_record(1, 7, Direction::kBackend, FrameKind::kTyped, answer));
    d.finish(8);
    EXPECT_TRUE(errors.empty()) << errors.front();
    if (with_meta) {
      EXPECT_EQ(sql, std::vector<std::string>{"SELECT 1"});
      EXPECT_EQ(tls, std::vector<std::string>{"TLSv1.3 TLS_AES_256_GCM_SHA384/TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"});
      EXPECT_EQ(metas, (std::vector<std::string>{"client_tls=TLSv1.3 TLS_AES_256_GCM_SHA384",
                                                 "server_tls=TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"}));
    } else {
      EXPECT_TRUE(sql.empty());
    }
    EXPECT_EQ(d.inferred_answers(), 0u);
  }
}

// A direct-TLS session (no SSLRequest): the record comes before any frame.
TEST(CaptureDecoder, DirectTlsSessionStartsWithItsStartupPacket) {
  std::vector<std::string> sql;
  std::vector<std::string> tls;
  CaptureDecoder::Callbacks cb;
  cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
    sql.push_back(ev.sql);
    tls.push_back(s.client_tls);
  };
  CaptureDecoder d(TrackerOptions{}, cb);
  Wire start = startup(), auth = W().msg('R', W().i32(0)).append(ready());
  Wire query = W().msg('Q', W().str("SELECT 2")), answer = W().msg('C', W().str("SELECT 1")).append(ready());
  d.on_record(meta_record(1, 1, kMetaClientTls, "TLSv1.3 TLS_AES_128_GCM_SHA256 direct"));
  d.on_record(frame_record(1, 2, Direction::kFrontend, FrameKind::kStartup, start));
  d.on_record(frame_record(1, 3, Direction::kBackend, FrameKind::kTyped, auth));
  d.on_record(frame_record(1, 4, Direction::kFrontend, FrameKind::kTyped, query));
  d.on_record(frame_record(1, 5, Direction::kBackend, FrameKind::kTyped, answer));
  d.finish(6);
  EXPECT_EQ(sql, std::vector<std::string>{"SELECT 2"});
  EXPECT_EQ(tls, std::vector<std::string>{"TLSv1.3 TLS_AES_128_GCM_SHA256 direct"});
}

// A session whose start is not in the records: a later file of a rotated set
// read alone. Before, its first Query was taken for a startup packet and the
// session could not be framed at all. Now it is partial: framed from the
// first record that starts a frame, its statements decoded where the
// protocol allows, its user and database unknown.
TEST(CaptureDecoder, PartialSessionIsFramedFromItsFirstWholeFrame) {
  struct Partial {
    uint64_t id;
    int64_t ts;
    std::string user;
  };
  std::vector<Partial> partials;
  std::vector<StatementEvent> events;
  std::vector<SessionInfo> infos;
  std::vector<std::string> errors;
  CaptureDecoder::Callbacks cb;
  cb.event = [&](const StatementEvent& ev, const SessionInfo& s) {
    events.push_back(ev);
    infos.push_back(s);
  };
  cb.partial = [&](const SessionInfo& s, int64_t ts) { partials.push_back({s.session_id, ts, s.user}); };
  cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
  CaptureDecoder d(TrackerOptions{}, cb);

  // Session 7: the writer repeated its SessionOpen at the start of the file
  // (pgproxy does after a rotation), then the frames go on mid-stream.
  CaptureRecord open;
  open.type = CaptureRecordType::kSessionOpen;
  open.session_id = 7;
  open.ts_ns = 1;
  open.client = "10.0.0.1:5000";
  d.on_record(open);
  // The last piece of a DataRow whose start was in the previous file, and
  // the end of the answer to a Query that was there too.
  CaptureRecord tail = frame_record(7, 2, Direction::kBackend, FrameKind::kTyped, W().raw("row bytes"));
  tail.frame_flags = kFrameLast;
  d.on_record(tail);
  d.on_record(
      frame_record(7, 3, Direction::kBackend, FrameKind::kTyped, W().msg('C', W().str("SELECT 1000")).append(ready())));
  // The last piece of a frontend CopyData, then a Query: self-contained.
  CaptureRecord copy_tail = frame_record(7, 4, Direction::kFrontend, FrameKind::kTyped, W().raw("1\tx\n"));
  copy_tail.frame_flags = 0;  // a middle piece
  d.on_record(copy_tail);
  d.on_record(frame_record(7, 5, Direction::kFrontend, FrameKind::kTyped, W().msg('Q', W().str("SELECT 2"))));
  d.on_record(frame_record(7, 6, Direction::kBackend, FrameKind::kTyped,
                           W().msg('T', W().i16(0)).msg('C', W().str("SELECT 1")).append(ready())));
  // An Execute of a statement prepared before the records began: its text is not known.
  Wire bind = W().msg('B', W().str("").str("S_1").i16(0).i16(0).i16(0));
  d.on_record(frame_record(7, 7, Direction::kFrontend, FrameKind::kTyped,
                           W().append(bind).msg('E', W().str("").i32(0)).msg('S', W())));
  d.on_record(frame_record(7, 8, Direction::kBackend, FrameKind::kTyped,
                           W().msg('2', W()).msg('C', W().str("UPDATE 1")).append(ready())));

  // Session 8 starts in the records: not partial.
  d.on_record(frame_record(8, 9, Direction::kFrontend, FrameKind::kStartup, startup()));
  d.on_record(frame_record(8, 10, Direction::kBackend, FrameKind::kTyped, W().msg('R', W().i32(0)).append(ready())));
  d.on_record(frame_record(8, 11, Direction::kFrontend, FrameKind::kTyped, W().msg('Q', W().str("SELECT 3"))));
  d.finish(12);

  EXPECT_TRUE(errors.empty()) << errors.front();
  ASSERT_EQ(partials.size(), 1u) << "once per session";
  EXPECT_EQ(partials[0].id, 7u);
  EXPECT_EQ(partials[0].ts, 2);
  EXPECT_EQ(partials[0].user, "");
  EXPECT_EQ(d.partial_sessions(), 1u);

  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, StatementKind::kQuery);
  EXPECT_EQ(events[0].sql, "SELECT 2");
  EXPECT_EQ(events[0].outcome, Outcome::kOk);
  EXPECT_EQ(events[0].tag, "SELECT 1");
  EXPECT_EQ(events[1].kind, StatementKind::kExecute);
  EXPECT_TRUE(events[1].sql_unknown);
  EXPECT_EQ(events[1].statement, "S_1");
  EXPECT_EQ(events[1].outcome, Outcome::kOk);
  EXPECT_EQ(events[1].tag, "UPDATE 1");
  for (int i : {0, 1}) {
    EXPECT_TRUE(infos[i].partial);
    EXPECT_EQ(infos[i].user, "");
    EXPECT_EQ(infos[i].database, "");
    EXPECT_EQ(infos[i].client, "10.0.0.1:5000");
  }
  EXPECT_EQ(events[2].sql, "SELECT 3");
  EXPECT_FALSE(infos[2].partial);
  EXPECT_EQ(infos[2].user, "alice");
}

// An encrypted session (TLS not terminated by the proxy) joined mid-stream:
// its bytes are opaque from the start, never taken for a startup packet.
TEST(CaptureDecoder, PartialEncryptedSessionStaysOpaque) {
  std::vector<std::string> errors;
  std::vector<FrameKind> kinds;
  uint64_t partials = 0;
  CaptureDecoder::Callbacks cb;
  cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
  cb.frame = [&](const SessionInfo&, Direction, const Frame& f, int64_t, PasswordKind, bool) {
    kinds.push_back(f.kind);
  };
  cb.partial = [&](const SessionInfo&, int64_t) { ++partials; };
  CaptureDecoder d(TrackerOptions{}, cb);
  // A TLS application-data record (type 0x17), from each side.
  Wire tls = W().byte(0x17).byte(3).byte(3).i16(4).raw("abcd");
  CaptureRecord be = frame_record(3, 1, Direction::kBackend, FrameKind::kOpaque, tls);
  CaptureRecord fe = frame_record(3, 2, Direction::kFrontend, FrameKind::kOpaque, tls);
  d.on_record(be);
  d.on_record(fe);
  d.finish(3);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(kinds, (std::vector<FrameKind>{FrameKind::kOpaque, FrameKind::kOpaque}));
  EXPECT_EQ(partials, 1u);
}

// A session that starts with a direct-TLS ClientHello is not partial.
TEST(CaptureDecoder, DirectTlsHelloIsAStartNotAPartialSession) {
  uint64_t partials = 0;
  std::vector<std::string> errors;
  CaptureDecoder::Callbacks cb;
  cb.partial = [&](const SessionInfo&, int64_t) { ++partials; };
  cb.error = [&](const SessionInfo&, const Error& e) { errors.push_back(e.describe()); };
  CaptureDecoder d(TrackerOptions{}, cb);
  Wire hello = W().byte(0x16).byte(3).byte(1).i16(4).raw("helo");
  d.on_record(frame_record(4, 1, Direction::kFrontend, FrameKind::kOpaque, hello));
  d.finish(2);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(partials, 0u);
}

}  // namespace
}  // namespace pgwire
