#include "pgwire/tracker.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

namespace pgwire {

const char* statement_kind_name(StatementKind k) {
  switch (k) {
    case StatementKind::kQuery: return "query";
    case StatementKind::kExecute: return "execute";
    case StatementKind::kFunctionCall: return "function_call";
  }
  return "unknown";
}

const char* statement_outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kError: return "error";
    case Outcome::kNotExecuted: return "not_executed";
    case Outcome::kUnknown: return "unknown";
  }
  return "unknown";
}

namespace {

// A place in a least-recently-used order, kept inside the value of an
// unordered_map entry: the map's nodes never move, so the links stay valid,
// and using or forgetting an entry allocates nothing.
struct LruLink {
  LruLink* prev = nullptr;
  LruLink* next = nullptr;           // null: not in the list (the unnamed entries never are)
  const std::string* key = nullptr;  // the entry's key in its map, to erase it when evicted
  LruLink() = default;
  LruLink(const LruLink&) = delete;
  LruLink& operator=(const LruLink&) = delete;
};

// The named entries of a map, most recently used first.
class LruList {
 public:
  LruList() { head_.prev = head_.next = &head_; }
  LruList(const LruList&) = delete;
  LruList& operator=(const LruList&) = delete;

  size_t size() const { return size_; }
  // `l` becomes the most recently used (added if it was not in the list).
  void touch(LruLink& l) {
    if (l.next != nullptr) {
      if (head_.next == &l) return;
      unlink(l);
    } else {
      ++size_;
    }
    l.prev = &head_;
    l.next = head_.next;
    head_.next->prev = &l;
    head_.next = &l;
  }
  void remove(LruLink& l) {
    if (l.next == nullptr) return;
    unlink(l);
    l.prev = l.next = nullptr;
    --size_;
  }
  LruLink* oldest() { return size_ == 0 ? nullptr : head_.prev; }

 private:
  static void unlink(LruLink& l) {
    l.prev->next = l.next;
    l.next->prev = l.prev;
  }
  LruLink head_;  // sentinel: head_.next the newest, head_.prev the oldest
  size_t size_ = 0;
};

struct PreparedStatement {
  std::string sql;
  bool sql_truncated = false;
  std::vector<uint32_t> param_types;
};

struct StatementEntry {
  PreparedStatement st;
  LruLink lru;
};

struct Portal {
  std::string statement;
  bool statement_known = false;
  PreparedStatement prepared;  // copy: the statement may be closed or replaced while the portal lives
  std::vector<StatementParam> params;
  LruLink lru;
};

// What the server still owes the client, in the order it will answer.
enum class Pending : uint8_t { kQuery, kParse, kBind, kDescribe, kExecute, kClose, kSync, kFunctionCall };

struct Request {
  Pending what;
  StatementEvent event;  // kQuery, kExecute, kFunctionCall
  std::string name;      // kParse: statement created; kDescribe: statement described ('S')
  bool describe_statement = false;
  bool failed = false;  // an ErrorResponse arrived for it (Query / FunctionCall wait for ReadyForQuery)
  // A response to it could not be decoded: its outcome is unknown, whatever
  // comes after (event.error_message says why).
  bool undecodable = false;
  uint64_t data_rows = 0;
};

// Clears an event for reuse, keeping the capacity of its strings and vectors:
// the request slots below are recycled, so steady traffic allocates nothing.
void reset(StatementEvent& ev) {
  ev.kind = StatementKind::kQuery;
  ev.sql.clear();
  ev.sql_truncated = false;
  ev.sql_unknown = false;
  ev.statement.clear();
  ev.portal.clear();
  ev.function_oid = 0;
  ev.params.clear();
  ev.outcome = Outcome::kUnknown;
  ev.tag.clear();
  ev.rows.reset();
  ev.sqlstate.clear();
  ev.error_message.clear();
  ev.failed_step = FailedStep::kExecute;
  ev.rows_digest = 0;
  ev.start_ns = 0;
  ev.end_ns = 0;
}

// FIFO of requests in a ring of slots that are reused rather than freed
// (std::deque allocates a node per Request, and every string in it again).
class RequestQueue {
 public:
  bool empty() const { return count_ == 0; }
  Request& front() { return slots_[head_]; }
  Request& back() { return at(count_ - 1); }
  Request& at(size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  size_t size() const { return count_; }
  // A cleared request at the back of the queue.
  Request& push(Pending what) {
    if (count_ == slots_.size()) grow();
    Request& r = at(count_++);
    r.what = what;
    reset(r.event);
    r.name.clear();
    r.describe_statement = false;
    r.failed = false;
    r.undecodable = false;
    r.data_rows = 0;
    return r;
  }
  void pop_front() {
    head_ = (head_ + 1) % slots_.size();
    if (--count_ == 0) {
      head_ = 0;
      // A deep pipeline may have grown the ring: give that back when it drains.
      if (slots_.size() > kKeptSlots) {
        slots_.resize(kKeptSlots);
        slots_.shrink_to_fit();
      }
    }
  }
  void pop_back() { --count_; }

 private:
  static constexpr size_t kKeptSlots = 64;
  void grow() {
    std::rotate(slots_.begin(), slots_.begin() + static_cast<ptrdiff_t>(head_), slots_.end());
    head_ = 0;
    slots_.resize(std::max<size_t>(8, slots_.size() * 2));
  }
  std::vector<Request> slots_;
  size_t head_ = 0;
  size_t count_ = 0;
};

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

// FNV-1a over a byte stream: the same whatever the piece boundaries.
uint64_t fnv1a(uint64_t h, Bytes b) {
  for (std::byte c : b) {
    h ^= std::to_integer<uint64_t>(c);
    h *= kFnvPrime;
  }
  return h;
}

uint64_t fnv1a_length(uint64_t h, uint32_t length) {
  std::byte be[4];
  store_be32(be, length);
  return fnv1a(h, Bytes{be, 4});
}

// Rows from a command tag: "SELECT 5", "INSERT 0 5", "UPDATE 5", "COPY 5", ...
std::optional<uint64_t> rows_from_tag(std::string_view tag) {
  size_t sp = tag.rfind(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  std::string_view verb = tag.substr(0, tag.find(' '));
  static constexpr std::string_view kCounting[] = {"SELECT", "INSERT", "UPDATE", "DELETE",
                                                   "MERGE",  "MOVE",   "FETCH",  "COPY"};
  bool counts = false;
  for (std::string_view v : kCounting) counts = counts || verb == v;
  if (!counts) return std::nullopt;
  std::string_view num = tag.substr(sp + 1);
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  if (ec != std::errc() || p != num.data() + num.size()) return std::nullopt;
  return n;
}

// Longest command tag kept (a real one is "INSERT 0 <count>"); the rest is cut.
constexpr uint32_t kMaxTagBytes = 1024;

// Drops the end of `s` if it is an incomplete UTF-8 sequence (a cut in the
// middle of a character).
void trim_partial_utf8(std::string& s) {
  size_t i = s.size();
  while (i > 0 && s.size() - i < 3 && (static_cast<uint8_t>(s[i - 1]) & 0xc0) == 0x80) --i;
  if (i == 0) return;
  const auto lead = static_cast<uint8_t>(s[i - 1]);
  if (lead < 0xc0) return;
  const size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  if (s.size() - (i - 1) < need) s.resize(i - 1);
}

// Marks the cut of a string of `length` bytes of which `out` holds the first.
[[gnu::cold]] void mark_cut(std::string& out, uint64_t length) {
  trim_partial_utf8(out);
  out += fmt::format("...(cut, {} bytes in all)", length);
}

// `kept`, the first bytes of a string of `length` bytes, into `out`; a cut
// is marked, so a reader never takes a prefix for the whole.
void assign_marked(std::string& out, std::string_view kept, uint64_t length) {
  // Keeps the capacity `out` has: a tag is set per statement, with no allocation.
  out.clear();
  out.append(kept);
  if (length > kept.size()) mark_cut(out, length);
}

// A string of a message: as much of it as is kept, and its whole length.
struct KeptString {
  std::string text;
  uint64_t length = 0;
};

// Reads one backend message from its pieces, in order, as they arrive (a
// whole frame is a single piece), keeping only bounded prefixes of the
// strings the tracker shows: whatever the size of the message, this holds a
// few KiB. It checks the structure as the whole-message decoders do (every
// string terminated, nothing after the end), so a message in pieces is judged
// as the same message whole would be; and it reads an ErrorResponse field by
// field, in whatever order they come.
//   ErrorResponse / NoticeResponse: fields (code byte, string) up to a zero
//     code byte; keeps C (SQLSTATE), M (message), V and S (severity).
//   CommandComplete: one string (the tag); ParameterStatus: two (name, value).
//   FunctionCallResponse, Authentication: the leading Int32; the rest is skipped.
// Other types: nothing is read.
class BackendStream {
 public:
  enum Slot : uint8_t {
    kSqlstate = 0,       // fields 'C'
    kMessage,            // 'M'
    kSeverity,           // 'V' (never localized)
    kSeverityLocalized,  // 'S'
    kSlots,
    kFirst = 0,   // strings: CommandComplete's tag, ParameterStatus's name
    kSecond = 1,  // ParameterStatus's value
  };

  void begin(uint8_t type, uint32_t body_length, uint32_t max_message) {
    type_ = type;
    body_length_ = body_length;
    seen_ = 0;
    trailing_ = 0;
    in_string_ = false;
    ended_ = false;
    current_ = kNoSlot;
    code_ = 0;
    strings_done_ = 0;
    head_have_ = 0;
    found_ = 0;
    for (KeptString& k : kept_) {
      k.text.clear();
      k.length = 0;
    }
    switch (static_cast<BackendType>(type)) {
      case BackendType::kErrorResponse:
      case BackendType::kNoticeResponse:
        shape_ = Shape::kFields;
        limits_[kSqlstate] = 32;
        limits_[kMessage] = max_message;
        limits_[kSeverity] = limits_[kSeverityLocalized] = 64;
        break;
      case BackendType::kCommandComplete:
        shape_ = Shape::kStrings;
        strings_wanted_ = 1;
        limits_[kFirst] = kMaxTagBytes;
        break;
      case BackendType::kParameterStatus:
        shape_ = Shape::kStrings;
        strings_wanted_ = 2;
        limits_[kFirst] = 64;
        limits_[kSecond] = max_message;
        break;
      case BackendType::kFunctionCallResponse:
      case BackendType::kAuthentication: shape_ = Shape::kHead; break;
      default: shape_ = Shape::kNone; break;
    }
  }

  void feed(Bytes piece) {
    const std::byte* p = piece.data();
    size_t left = piece.size();
    seen_ += left;
    if (shape_ == Shape::kNone) return;
    if (shape_ == Shape::kHead) {
      size_t n = std::min<size_t>(sizeof head_ - head_have_, left);
      std::memcpy(head_ + head_have_, p, n);
      head_have_ += n;
      return;
    }
    while (left > 0) {
      if (ended_) {
        trailing_ += left;
        return;
      }
      if (!in_string_) {
        if (shape_ == Shape::kFields) {
          code_ = std::to_integer<char>(*p++);
          --left;
          if (code_ == 0) {
            ended_ = true;
            continue;
          }
          current_ = field_slot(code_);
        } else {
          current_ = strings_done_;
        }
        in_string_ = true;
        continue;
      }
      const void* nul = std::memchr(p, 0, left);
      const size_t n = nul == nullptr ? left : static_cast<size_t>(static_cast<const std::byte*>(nul) - p);
      if (current_ != kNoSlot) {
        KeptString& k = kept_[current_];
        const size_t room = limits_[current_] > k.text.size() ? limits_[current_] - k.text.size() : 0;
        k.text.append(reinterpret_cast<const char*>(p), std::min(n, room));
        k.length += n;
      }
      p += n;
      left -= n;
      if (nul == nullptr) return;
      ++p;
      --left;
      in_string_ = false;
      if (shape_ == Shape::kStrings && ++strings_done_ == strings_wanted_) ended_ = true;
    }
  }

  // After the last piece: whether the message was well formed; if not,
  // why() says what is wrong with it.
  bool finish() {
    why_.clear();
    if (seen_ != body_length_) {
      why_ = fmt::format("{} of its {} bytes seen", seen_, body_length_);
      return false;
    }
    switch (shape_) {
      case Shape::kNone: break;
      case Shape::kHead:
        if (head_have_ < sizeof head_) why_ = fmt::format("{} bytes, too short for its Int32", seen_);
        break;
      case Shape::kFields:
        if (in_string_) {
          why_ = fmt::format("field {} has no terminating zero byte", describe_code(code_));
        } else if (!ended_) {
          why_ = "no zero byte after its last field";
        } else if (trailing_ != 0) {
          why_ = fmt::format("{} bytes after the zero byte that ends its fields", trailing_);
        }
        break;
      case Shape::kStrings:
        if (!ended_) {
          why_ = fmt::format("string {} has no terminating zero byte", strings_done_ + 1);
        } else if (trailing_ != 0) {
          why_ = fmt::format("{} bytes after its last string", trailing_);
        }
        break;
    }
    return why_.empty();
  }

  uint8_t type() const { return type_; }
  uint32_t body_length() const { return body_length_; }
  const std::string& why() const { return why_; }
  const KeptString& kept(Slot s) const { return kept_[s]; }
  // The leading Int32 (FunctionCallResponse's value length, Authentication's code).
  int32_t head() const { return static_cast<int32_t>(load_be32(head_)); }
  // The severity, as FieldResponse::severity() chooses it.
  const KeptString& severity() const {
    return found_ & (1u << kSeverity) ? kept_[kSeverity] : kept_[kSeverityLocalized];
  }

 private:
  enum class Shape : uint8_t { kNone, kFields, kStrings, kHead };
  static constexpr uint8_t kNoSlot = 0xff;

  // Where a field's value is kept: the first field of each code counts, as
  // with FieldResponse::field(); the others are skipped.
  uint8_t field_slot(char code) {
    uint8_t slot = kNoSlot;
    switch (code) {
      case 'C': slot = kSqlstate; break;
      case 'M': slot = kMessage; break;
      case 'V': slot = kSeverity; break;
      case 'S': slot = kSeverityLocalized; break;
      default: return kNoSlot;
    }
    if (found_ & (1u << slot)) return kNoSlot;
    found_ |= static_cast<uint8_t>(1u << slot);
    return slot;
  }
  static std::string describe_code(char code) {
    auto c = static_cast<uint8_t>(code);
    return c >= 0x20 && c < 0x7f ? fmt::format("'{}'", code) : fmt::format("0x{:02x}", c);
  }

  uint8_t type_ = 0;
  Shape shape_ = Shape::kNone;
  uint32_t body_length_ = 0;
  uint64_t seen_ = 0;      // body bytes fed
  uint64_t trailing_ = 0;  // bytes after the end of the fields / strings
  bool in_string_ = false;
  bool ended_ = false;         // the zero code byte, or the last string's NUL, was read
  uint8_t current_ = kNoSlot;  // where the string being read is kept
  char code_ = 0;              // fields: the code of the field being read
  uint8_t strings_done_ = 0;
  uint8_t strings_wanted_ = 0;
  uint8_t found_ = 0;  // fields: bit per slot already filled
  std::byte head_[4] = {};
  size_t head_have_ = 0;
  uint32_t limits_[kSlots] = {};
  KeptString kept_[kSlots];
  std::string why_;
};

std::string_view auth_method_name(int32_t code) {
  switch (static_cast<AuthCode>(code)) {
    case AuthCode::kCleartextPassword: return "password";
    case AuthCode::kMd5Password: return "md5";
    case AuthCode::kGss: return "gss";
    case AuthCode::kSspi: return "sspi";
    case AuthCode::kKerberosV5: return "kerberos";
    case AuthCode::kSasl: return "sasl";
    default: return "";
  }
}

}  // namespace

struct ConnectionTracker::Impl {
  TrackerOptions opts;
  Sink sink;
  ReadySink ready_sink;
  bool ready_seen = false;
  SessionInfo session;
  TrackerStats stats;
  int32_t last_auth_code = -1;

  std::unordered_map<std::string, StatementEntry> statements;
  std::unordered_map<std::string, Portal> portals;
  // The named ones among them, least recently used last: the first forgotten
  // over max_statements / max_portals.
  LruList statement_lru;
  LruList portal_lru;
  RequestQueue queue;
  // The server discards extended-protocol messages after an error until Sync;
  // true while frontend messages arriving now will be discarded too.
  bool discard_until_sync = false;

  // Reassembly of a frontend frame that arrived in pieces (bounded by max_sql_bytes).
  std::vector<std::byte> assembly[2];
  bool assembly_truncated[2] = {false, false};
  // The backend message being read piece by piece (also every ErrorResponse,
  // whole or not), and why the last backend frame that did not decode did not.
  BackendStream backend_stream;
  bool piece_pending = false;  // backend_stream holds a frame whose last piece is still to come
  std::string undecodable_reason;

  // The Parse and Bind of every extended-protocol statement are decoded into
  // these, whose vectors keep their capacity: no allocation per statement.
  // Their views are into the frame being dispatched, and dead after it.
  fe::Parse parse_msg;
  fe::Bind bind_msg;

  Impl(TrackerOptions o, Sink s) : opts(o), sink(std::move(s)) {}

  void emit(StatementEvent& ev) {
    ++stats.events;
    if (sink) sink(ev, session);
  }

  void decode_error(const Error& e) {
    ++stats.decode_errors;
    stats.last_error = e.describe();
  }

  // Assigns in place, reusing the capacity `out` already has.
  static void clip_into(std::string& out, std::string_view s, bool* truncated, uint32_t limit) {
    if (s.size() > limit) {
      *truncated = true;
      s = s.substr(0, limit);
    }
    out.assign(s);
  }

  // ---- frontend -----------------------------------------------------------

  void on_frontend(const fe::Message& msg, int64_t ts, bool truncated) {
    std::visit([&](const auto& m) { frontend(m, ts, truncated); }, msg);
  }

  void frontend(const fe::StartupMessage& m, int64_t, bool) {
    session.protocol = m.protocol;
    session.user = std::string(m.param("user"));
    session.database = std::string(m.param("database"));
    if (session.database.empty()) session.database = session.user;
    session.application_name = std::string(m.param("application_name"));
  }
  void frontend(const fe::SslRequest&, int64_t, bool) {}
  void frontend(const fe::GssEncRequest&, int64_t, bool) {}
  void frontend(const fe::CancelRequest& m, int64_t, bool) {
    session.backend_pid = m.process_id;
    session.cancel_key.assign(m.secret_key.begin(), m.secret_key.end());
  }

  void frontend(const fe::Query& m, int64_t ts, bool truncated) {
    Request& r = queue.push(Pending::kQuery);
    r.event.kind = StatementKind::kQuery;
    r.event.sql_truncated = truncated;
    clip_into(r.event.sql, m.sql, &r.event.sql_truncated, opts.max_sql_bytes);
    r.event.start_ns = ts;
    submit();
  }

  // ---- named statements and portals: bounded, least recently used forgotten

  // The entry `e` of `map` (just inserted if `inserted`) was used: it becomes
  // the most recently used. A new named one past `limit` makes room first by
  // forgetting the least recently used. The unnamed entry ("") is never in
  // the list: it is replaced, not accumulated, and never forgotten.
  template <class Map>
  static void use(Map& map, LruList& lru, typename Map::value_type& e, bool inserted, size_t limit, uint64_t& evicted) {
    if (e.first.empty()) return;
    if (inserted) {
      e.second.lru.key = &e.first;
      if (lru.size() >= std::max<size_t>(1, limit)) {
        LruLink* oldest = lru.oldest();
        auto it = map.find(*oldest->key);
        lru.remove(*oldest);
        map.erase(it);
        ++evicted;
      }
    }
    lru.touch(e.second.lru);
  }
  template <class Map>
  static void forget(Map& map, LruList& lru, const std::string& name) {
    auto it = map.find(name);
    if (it == map.end()) return;
    lru.remove(it->second.lru);
    map.erase(it);
  }

  void frontend(const fe::Parse& m, int64_t, bool truncated) {
    auto [it, inserted] = statements.try_emplace(std::string(m.statement));
    use(statements, statement_lru, *it, inserted, opts.max_statements, stats.statements_evicted);
    PreparedStatement& st = it->second.st;
    st.sql_truncated = truncated;
    clip_into(st.sql, m.sql, &st.sql_truncated, opts.max_sql_bytes);
    st.param_types = m.param_types;
    std::string& name = queue.push(Pending::kParse).name;
    name.clear();
    name.append(m.statement);
    submit();
  }

  void frontend(const fe::Bind& m, int64_t, bool truncated) {
    // Filled in place: a portal that is bound again (the unnamed one, every
    // statement) reuses the memory of its previous binding.
    auto [pit, inserted] = portals.try_emplace(std::string(m.portal));
    use(portals, portal_lru, *pit, inserted, opts.max_portals, stats.portals_evicted);
    Portal& p = pit->second;
    p.statement.assign(m.statement);
    auto it = statements.find(p.statement);
    p.statement_known = it != statements.end();
    if (p.statement_known) {
      use(statements, statement_lru, *it, false, opts.max_statements, stats.statements_evicted);
      p.prepared = it->second.st;
    } else {
      p.prepared.sql.clear();
      p.prepared.sql_truncated = false;
      p.prepared.param_types.clear();
    }
    p.params.resize(truncated ? 0 : m.params.size());
    for (size_t i = 0; i < p.params.size(); ++i) {
      StatementParam& sp = p.params[i];
      if (m.params[i]) {
        if (!sp.value) sp.value.emplace();
        bool cut = false;
        clip_into(*sp.value, as_string_view(*m.params[i]), &cut, opts.max_param_bytes);
        sp.cut_size = cut ? static_cast<uint32_t>(m.params[i]->size()) : 0;
      } else {
        sp.value.reset();
        sp.cut_size = 0;
      }
      sp.format = m.param_format(i);
      sp.type_oid = i < p.prepared.param_types.size() ? p.prepared.param_types[i] : 0;
    }
    queue.push(Pending::kBind).name.assign(m.portal);
    submit();
  }

  void frontend(const fe::Describe& m, int64_t, bool) {
    if (!m.name.empty()) {
      if (m.target == 'S') {
        if (auto it = statements.find(std::string(m.name)); it != statements.end())
          use(statements, statement_lru, *it, false, opts.max_statements, stats.statements_evicted);
      } else if (auto it = portals.find(std::string(m.name)); it != portals.end()) {
        use(portals, portal_lru, *it, false, opts.max_portals, stats.portals_evicted);
      }
    }
    Request& r = queue.push(Pending::kDescribe);
    r.name.assign(m.name);
    r.describe_statement = m.target == 'S';
    submit();
  }

  void frontend(const fe::Execute& m, int64_t ts, bool) {
    StatementEvent& ev = queue.push(Pending::kExecute).event;
    ev.kind = StatementKind::kExecute;
    ev.portal.assign(m.portal);
    ev.start_ns = ts;
    auto it = portals.find(ev.portal);
    if (it != portals.end()) {
      use(portals, portal_lru, *it, false, opts.max_portals, stats.portals_evicted);
      const Portal& p = it->second;
      ev.statement = p.statement;
      ev.sql = p.prepared.sql;
      ev.sql_truncated = p.prepared.sql_truncated;
      ev.sql_unknown = !p.statement_known;
      ev.params = p.params;
    } else {
      ev.sql_unknown = true;  // never bound that we saw, or forgotten
    }
    submit();
  }

  void frontend(const fe::Close& m, int64_t, bool) {
    if (m.target == 'S') {
      forget(statements, statement_lru, std::string(m.name));
    } else {
      forget(portals, portal_lru, std::string(m.name));
    }
    queue.push(Pending::kClose);
    submit();
  }

  void frontend(const fe::Sync&, int64_t, bool) {
    discard_until_sync = false;
    queue.push(Pending::kSync);
    submit();
  }

  void frontend(const fe::FunctionCall& m, int64_t ts, bool) {
    StatementEvent& ev = queue.push(Pending::kFunctionCall).event;
    ev.kind = StatementKind::kFunctionCall;
    ev.function_oid = m.function_oid;
    ev.sql = fmt::format("function call oid {}", m.function_oid);
    ev.start_ns = ts;
    for (size_t i = 0; i < m.args.size(); ++i) {
      StatementParam sp;
      if (m.args[i]) {
        sp.value.emplace();
        bool cut = false;
        clip_into(*sp.value, as_string_view(*m.args[i]), &cut, opts.max_param_bytes);
        sp.cut_size = cut ? static_cast<uint32_t>(m.args[i]->size()) : 0;
      }
      sp.format = m.arg_format(i);
      ev.params.push_back(std::move(sp));
    }
    submit();
  }

  void frontend(const fe::Flush&, int64_t, bool) {}
  void frontend(const fe::Terminate&, int64_t, bool) {}
  void frontend(const CopyData&, int64_t, bool) {}
  void frontend(const CopyDone&, int64_t, bool) {}
  void frontend(const fe::CopyFail&, int64_t, bool) {}
  void frontend(const fe::PasswordMessage&, int64_t, bool) {}
  void frontend(const fe::SaslInitialResponse& m, int64_t, bool) { session.auth_method = std::string(m.mechanism); }
  void frontend(const fe::SaslResponse&, int64_t, bool) {}
  void frontend(const fe::GssResponse&, int64_t, bool) {}

  // The request just pushed is one the server will answer; unless, after an
  // error in this batch, it skips it, or we only see the client's side: then
  // it is settled (and taken back off the queue) at once.
  void submit() {
    Request& r = queue.back();
    if (opts.frontend_only) {
      if (r.what == Pending::kQuery || r.what == Pending::kExecute || r.what == Pending::kFunctionCall) {
        r.event.outcome = Outcome::kUnknown;
        emit(r.event);
      }
      queue.pop_back();
      return;
    }
    // postgres.c ignores every message but Sync while skipping, Query included.
    if (discard_until_sync && r.what != Pending::kSync) {
      skip(r);
      queue.pop_back();
    }
  }

  // The server discarded this request: a statement in it never ran.
  void skip(Request& r) {
    if (r.what == Pending::kExecute || r.what == Pending::kQuery || r.what == Pending::kFunctionCall) {
      r.event.outcome = Outcome::kNotExecuted;
      emit(r.event);
    }
  }

  // ---- backend ------------------------------------------------------------

  Request* front() { return queue.empty() ? nullptr : &queue.front(); }

  // Cold paths (large or undecodable backend frames, errors) are kept out of
  // line: inlined, they made the compiler stop inlining the small steps of
  // the per-statement path (measured with callgrind).

  // Settles a request. Once a response to it did not decode, its outcome is
  // unknown whatever the rest said; and an unknown outcome has no end (the
  // statement may still be running, or have ended at any time).
  void finish(Request& r, Outcome outcome, int64_t ts) {
    if (r.undecodable) outcome = Outcome::kUnknown;
    r.event.outcome = outcome;
    r.event.end_ns = outcome == Outcome::kUnknown ? 0 : ts;
    emit(r.event);
  }

  void pop() { queue.pop_front(); }

  void on_backend(const be::Message& msg, int64_t ts) {
    std::visit([&](const auto& m) { backend(m, ts); }, msg);
  }

  void backend(const be::Authentication& m, int64_t ts) {
    last_auth_code = m.code;
    if (m.code == static_cast<int32_t>(AuthCode::kOk)) {
      session.authenticated = true;
      session.authenticated_ns = ts;
      if (session.auth_method.empty()) session.auth_method = "trust";
    } else if (std::string_view name = auth_method_name(m.code); !name.empty() && session.auth_method.empty()) {
      session.auth_method = std::string(name);
    }
  }
  void backend(const be::BackendKeyData& m, int64_t) {
    session.backend_pid = m.process_id;
    session.cancel_key.assign(m.secret_key.begin(), m.secret_key.end());
  }
  void backend(const be::NegotiateProtocolVersion& m, int64_t) {
    session.protocol = (3u << 16) | static_cast<uint16_t>(m.newest_minor);
  }
  void backend(const be::ParameterStatus& m, int64_t) {
    if (m.name == "application_name") session.application_name = std::string(m.value);
  }

  void backend(const be::ParseComplete&, int64_t) { expect_pop(Pending::kParse); }
  void backend(const be::BindComplete&, int64_t) { expect_pop(Pending::kBind); }
  void backend(const be::CloseComplete&, int64_t) { expect_pop(Pending::kClose); }
  void backend(const be::NoData&, int64_t) {
    if (Request* r = front(); r && r->what == Pending::kDescribe) pop();
  }
  void backend(const be::ParameterDescription& m, int64_t) {
    Request* r = front();
    if (!r || r->what != Pending::kDescribe || !r->describe_statement) return;
    auto it = statements.find(r->name);
    if (it == statements.end()) return;
    // Fill in what Parse left unspecified (0) with what the server inferred.
    auto& types = it->second.st.param_types;
    if (types.size() < m.types.size()) types.resize(m.types.size(), 0);
    for (size_t i = 0; i < m.types.size(); ++i)
      if (types[i] == 0) types[i] = m.types[i];
    // Portals bound to it before the Describe answered were bound with the old types.
    for (auto& [name, portal] : portals) {
      if (portal.statement != r->name) continue;
      portal.prepared.param_types = types;
      for (size_t i = 0; i < portal.params.size() && i < types.size(); ++i) portal.params[i].type_oid = types[i];
    }
    for (size_t k = 0; k < queue.size(); ++k) {
      Request& q = queue.at(k);
      if (q.what != Pending::kExecute || q.event.statement != r->name) continue;
      for (size_t i = 0; i < q.event.params.size() && i < types.size(); ++i)
        if (q.event.params[i].type_oid == 0) q.event.params[i].type_oid = types[i];
    }
  }
  void backend(const be::RowDescription&, int64_t) {
    if (Request* r = front(); r && r->what == Pending::kDescribe) pop();
  }
  void backend(const be::DataRow&, int64_t) {
    if (Request* r = front()) ++r->data_rows;
  }

  // Row digests work on the raw frames, so they are fed before decoding.
  void digest_row_piece(const Frame& f) {
    Request* r = front();
    if (!r || (r->what != Pending::kQuery && r->what != Pending::kExecute)) return;
    uint64_t h = r->event.rows_digest == 0 ? kFnvOffset : r->event.rows_digest;
    if (f.first) h = fnv1a_length(h, f.length);
    r->event.rows_digest = fnv1a(h, f.body);
  }
  void backend(const be::CommandComplete& m, int64_t ts) {
    command_complete(m.tag.substr(0, kMaxTagBytes), m.tag.size(), ts);
  }
  // A CommandComplete whose tag is `tag`, the first bytes of `tag_length`;
  // `tag` null if the message did not decode.
  void command_complete(std::optional<std::string_view> tag, uint64_t tag_length, int64_t ts) {
    Request* r = front();
    if (!r) return;
    // A cut tag has lost its row count, which is at the end.
    std::optional<uint64_t> rows = tag && tag_length == tag->size() ? rows_from_tag(*tag) : std::nullopt;
    if (r->what == Pending::kQuery) {
      // Each statement of a multi-statement string completes separately: keep the
      // last tag and add up the rows.
      if (tag) assign_marked(r->event.tag, *tag, tag_length);
      if (rows) r->event.rows = r->event.rows.value_or(0) + *rows;
    } else if (r->what == Pending::kExecute) {
      if (tag) assign_marked(r->event.tag, *tag, tag_length);
      r->event.rows = rows;
      finish(*r, Outcome::kOk, ts);
      pop();
    }
  }
  void backend(const be::EmptyQueryResponse&, int64_t ts) {
    Request* r = front();
    if (!r) return;
    if (r->what == Pending::kQuery) {
      if (r->event.tag.empty()) r->event.tag = "EMPTY";
    } else if (r->what == Pending::kExecute) {
      r->event.tag = "EMPTY";
      finish(*r, Outcome::kOk, ts);
      pop();
    }
  }
  void backend(const be::PortalSuspended&, int64_t ts) {
    Request* r = front();
    if (!r || r->what != Pending::kExecute) return;
    r->event.tag = "SUSPENDED";
    r->event.rows = r->data_rows;
    finish(*r, Outcome::kOk, ts);
    pop();
  }
  void backend(const be::FunctionCallResponse&, int64_t) {
    if (Request* r = front(); r && r->what == Pending::kFunctionCall) r->event.tag = "FUNCTION CALL";
  }
  void backend(const be::ErrorResponse&, int64_t) {}  // read by error_response() instead

  // An ErrorResponse, read by backend_stream (whole or in pieces). One that
  // does not decode is an error all the same: the server skips to Sync.
  // Only which error is not known, so the request it fails ends unknown.
  // A whole ErrorResponse: read as pieces are, so that a message is judged
  // and cut the same whatever its size.
  [[gnu::noinline]] void error_frame(const Frame& f, int64_t ts) {
    backend_stream.begin(f.type, f.body_length(), opts.max_error_bytes);
    backend_stream.feed(f.body);
    error_response(ts);
  }
  void error_response(int64_t ts) {
    const bool decoded = backend_stream.finish();
    if (!decoded) note_undecodable(backend_stream.type(), backend_stream.why());
    Request* r = front();
    if (!r) return;  // FATAL outside any request (startup, shutdown)
    auto record = [&](Request& q) {
      if (!decoded) return taint(q);
      if (q.undecodable) return;  // the first thing known about it is that it is unknown
      const KeptString& state = backend_stream.kept(BackendStream::kSqlstate);
      const KeptString& message = backend_stream.kept(BackendStream::kMessage);
      q.event.sqlstate.assign(state.text);
      assign_marked(q.event.error_message, message.text, message.length);
    };
    switch (r->what) {
      case Pending::kQuery:
      case Pending::kFunctionCall:
        record(*r);
        r->failed = true;  // completes at ReadyForQuery
        return;
      case Pending::kSync: return;  // e.g. a deferred constraint failing at the implicit COMMIT
      case Pending::kExecute:
        record(*r);
        finish(*r, Outcome::kError, ts);
        break;
      case Pending::kParse:
        if (!r->name.empty()) forget(statements, statement_lru, r->name);
        break;
      case Pending::kBind:
      case Pending::kDescribe:
      case Pending::kClose: break;
    }
    // An error in Parse, Bind or Describe means the statement they prepare
    // cannot run: its Execute, if it is in this batch, failed with this error.
    Request failed_step = std::move(*r);
    pop();
    bool attributed = failed_step.what == Pending::kExecute;
    // The server now discards everything up to the next Sync.
    while (!queue.empty() && queue.front().what != Pending::kSync) {
      Request& q = queue.front();
      if (!attributed && q.what == Pending::kExecute && prepares(failed_step, q.event)) {
        record(q);
        q.event.failed_step = failed_step.what == Pending::kParse  ? FailedStep::kParse
                              : failed_step.what == Pending::kBind ? FailedStep::kBind
                                                                   : FailedStep::kDescribe;
        finish(q, Outcome::kError, ts);
        attributed = true;
      } else {
        skip(q);
      }
      pop();
    }
    if (queue.empty()) discard_until_sync = true;
  }
  // Whether the extended-protocol step `step` was preparing the Execute `ev`.
  static bool prepares(const Request& step, const StatementEvent& ev) {
    switch (step.what) {
      case Pending::kParse: return ev.statement == step.name;
      case Pending::kBind: return ev.portal == step.name;
      case Pending::kDescribe: return step.describe_statement ? ev.statement == step.name : ev.portal == step.name;
      default: return false;
    }
  }

  void backend(const be::ReadyForQuery&, int64_t ts) {
    discard_until_sync = false;
    if (!ready_seen) {
      ready_seen = true;
      if (ready_sink) ready_sink(session, ts);
    }
    // Normally the front is the Query / FunctionCall / Sync this answers. If
    // anything else is still ahead of it, the stream and our model disagree:
    // settle those with an unknown outcome rather than mismatch forever.
    while (!queue.empty()) {
      Request& r = queue.front();
      Pending what = r.what;
      if (what == Pending::kQuery || what == Pending::kFunctionCall) {
        finish(r, r.failed ? Outcome::kError : Outcome::kOk, ts);
      } else if (what == Pending::kExecute) {
        finish(r, Outcome::kUnknown, ts);
      }
      pop();
      if (what == Pending::kQuery || what == Pending::kFunctionCall || what == Pending::kSync) break;
    }
  }
  void backend(const be::NoticeResponse&, int64_t) {}
  void backend(const be::NotificationResponse&, int64_t) {}
  void backend(const be::CopyInResponse&, int64_t) {}
  void backend(const be::CopyOutResponse&, int64_t) {}
  void backend(const be::CopyBothResponse&, int64_t) {}
  void backend(const CopyData&, int64_t) {}
  void backend(const CopyDone&, int64_t) {}
  void backend(const be::EncryptionAnswer&, int64_t) {}

  void expect_pop(Pending what) {
    if (Request* r = front(); r && r->what == what) pop();
  }

  // ---- backend frames that do not decode, and large ones --------------------

  [[gnu::cold]] void note_undecodable(uint8_t type, std::string_view why) {
    undecodable_reason = fmt::format("undecodable {}: {}", backend_type_name(type), why);
    ++stats.decode_errors;
    stats.last_error = undecodable_reason;
  }
  // `q` got a response that did not decode: its outcome is unknown (see finish()).
  void taint(Request& q) {
    if (q.undecodable) return;
    q.undecodable = true;
    q.event.sqlstate.clear();
    q.event.error_message = undecodable_reason;
  }
  // The statement a response at the front of the queue belongs to: the front
  // request itself, or for a step of an extended batch (Parse, Bind, ...) the
  // first Execute after it in the batch; null when there is none.
  Request* owner_of_front() {
    for (size_t k = 0; k < queue.size(); ++k) {
      Request& q = queue.at(k);
      switch (q.what) {
        case Pending::kQuery:
        case Pending::kExecute:
        case Pending::kFunctionCall: return &q;
        case Pending::kSync: return nullptr;
        default: break;
      }
    }
    return nullptr;
  }

  // A backend frame of `type` that did not decode (`why`), other than an
  // ErrorResponse (error_response() takes those). It still does what its type
  // does to the requests, so matching goes on; the statement it belongs to
  // ends with an unknown outcome.
  [[gnu::cold]] void backend_undecodable(uint8_t type, std::string_view why, int64_t ts) {
    note_undecodable(type, why);
    switch (static_cast<BackendType>(type)) {
      // Asynchronous or startup messages: they answer no request.
      case BackendType::kNoticeResponse:
      case BackendType::kNotificationResponse:
      case BackendType::kParameterStatus:
      case BackendType::kAuthentication:
      case BackendType::kBackendKeyData:
      case BackendType::kNegotiateProtocolVersion: return;
      default: break;
    }
    if (Request* owner = owner_of_front()) taint(*owner);
    switch (static_cast<BackendType>(type)) {
      case BackendType::kCommandComplete: return command_complete(std::nullopt, 0, ts);
      case BackendType::kEmptyQueryResponse: return backend(be::EmptyQueryResponse{}, ts);
      case BackendType::kPortalSuspended: return backend(be::PortalSuspended{}, ts);
      case BackendType::kFunctionCallResponse: return backend(be::FunctionCallResponse{}, ts);
      case BackendType::kReadyForQuery: return backend(be::ReadyForQuery{}, ts);
      case BackendType::kParseComplete: return expect_pop(Pending::kParse);
      case BackendType::kBindComplete: return expect_pop(Pending::kBind);
      case BackendType::kCloseComplete: return expect_pop(Pending::kClose);
      case BackendType::kNoData:
      case BackendType::kRowDescription: return expect_pop(Pending::kDescribe);
      default: return;  // ParameterDescription (its types stay unknown), COPY messages
    }
  }

  // A piece of a backend frame too large to come whole. Each type is read as
  // far as the tracker needs it, by backend_stream, within bounded memory;
  // at the last piece it acts as the same message whole would.
  [[gnu::cold]] void backend_piece(const Frame& f, int64_t ts) {
    if (f.kind != FrameKind::kTyped) return;
    if (f.first) {
      if (f.type == 'D') {
        if (Request* r = front()) ++r->data_rows;
      }
      backend_stream.begin(f.type, f.body_length(), opts.max_error_bytes);
      piece_pending = true;
    } else if (!piece_pending || backend_stream.type() != f.type) {
      return;  // the rest of a frame whose start was not seen
    }
    backend_stream.feed(f.body);
    if (!f.last) return;
    piece_pending = false;
    const uint8_t type = f.type;
    if (type == 'E') return error_response(ts);
    const bool decoded = backend_stream.finish();
    const KeptString& first = backend_stream.kept(BackendStream::kFirst);
    switch (static_cast<BackendType>(type)) {
      case BackendType::kCommandComplete:
        if (!decoded) break;
        return command_complete(std::string_view(first.text), first.length, ts);
      case BackendType::kParameterStatus:
        if (!decoded) break;
        if (first.text == "application_name" && first.length == first.text.size()) {
          const KeptString& value = backend_stream.kept(BackendStream::kSecond);
          assign_marked(session.application_name, value.text, value.length);
        }
        return;
      case BackendType::kFunctionCallResponse: {
        // Int32 length of the value (-1 for NULL), then the value.
        const int64_t len = backend_stream.head();
        if (decoded && len >= 0 && len + 4 == backend_stream.body_length())
          return backend(be::FunctionCallResponse{}, ts);
        return backend_undecodable(type,
                                   decoded
                                       ? fmt::format("value length {} in {} bytes", len, backend_stream.body_length())
                                       : backend_stream.why(),
                                   ts);
      }
      case BackendType::kAuthentication: {
        // Only the exchanges that carry data of their own can be this large.
        be::Authentication a;
        a.code = backend_stream.head();
        const bool opaque = a.code == static_cast<int32_t>(AuthCode::kGssContinue) ||
                            a.code == static_cast<int32_t>(AuthCode::kSaslContinue) ||
                            a.code == static_cast<int32_t>(AuthCode::kSaslFinal);
        if (decoded && opaque) return backend(a, ts);
        return backend_undecodable(
            type,
            decoded ? fmt::format("{} of {} bytes", auth_code_name(a.code), backend_stream.body_length())
                    : backend_stream.why(),
            ts);
      }
      // Read by type alone, as when they come whole (see dispatch()); their
      // content is not needed, at any size.
      case BackendType::kDataRow: return;
      case BackendType::kRowDescription: return expect_pop(Pending::kDescribe);
      case BackendType::kNoticeResponse:
      case BackendType::kNotificationResponse:
      case BackendType::kCopyData: return;
      default:
        // A message that cannot be this large: only its type is known.
        return backend_undecodable(type, fmt::format("{} bytes, too large for its type", backend_stream.body_length()),
                                   ts);
    }
    backend_undecodable(type, backend_stream.why(), ts);
  }

  // ---- frames -------------------------------------------------------------

  // Frontend types whose content the tracker needs even when huge.
  static bool wanted_large(uint8_t type) { return type == 'Q' || type == 'P' || type == 'B' || type == 'F'; }

  void on_frame(Direction dir, const Frame& f, int64_t ts) {
    const int d = static_cast<int>(dir);
    if (dir == Direction::kFrontend) {
      ++stats.frontend_frames;
    } else {
      ++stats.backend_frames;
    }
    if (f.kind == FrameKind::kOpaque) return;
    if (opts.digest_rows && dir == Direction::kBackend && f.kind == FrameKind::kTyped && f.type == 'D') {
      digest_row_piece(f);
    }
    if (f.whole()) {
      dispatch(dir, f, ts, false);
      return;
    }
    if (dir == Direction::kBackend) return backend_piece(f, ts);
    // A large frontend frame in pieces: the start of those the tracker reads.
    if (!wanted_large(f.type)) return;
    if (f.first) {
      assembly[d].clear();
      assembly_truncated[d] = false;
    }
    size_t room = opts.max_sql_bytes + 4096 > assembly[d].size() ? opts.max_sql_bytes + 4096 - assembly[d].size() : 0;
    if (f.body.size() > room) assembly_truncated[d] = true;
    size_t take = std::min(room, f.body.size());
    assembly[d].insert(assembly[d].end(), f.body.begin(), f.body.begin() + static_cast<ptrdiff_t>(take));
    if (!f.last) return;
    Frame whole = f;
    whole.first = whole.last = true;
    whole.body_offset = 0;
    whole.body = {assembly[d].data(), assembly[d].size()};
    if (!assembly_truncated[d]) {
      dispatch(dir, whole, ts, false);
    } else {
      dispatch_truncated(whole, ts);
    }
    assembly[d].clear();
    assembly[d].shrink_to_fit();
  }

  // The messages every extended-protocol statement sends and receives are
  // decoded by their own decoder, as decode_frontend/decode_backend would,
  // but without building and visiting the message variant, which cost more
  // than the decoding.
  template <class M>
  void frontend_typed(const Frame& f, int64_t ts, bool truncated) {
    auto msg = M::decode(f.body, f.offset + 5);
    if (!msg) return decode_error(msg.error());
    frontend(*msg, ts, truncated);
  }
  template <class M>
  void frontend_into(M& msg, const Frame& f, int64_t ts, bool truncated) {
    Status st = M::decode_into(f.body, f.offset + 5, msg);
    if (st) frontend(msg, ts, truncated);
    trim(msg);
    if (!st) decode_error(st.error());
  }
  // A message of thousands of parameters is not kept for the rest of the session.
  static constexpr size_t kKeptParams = 64;
  static void trim(fe::Parse& m) {
    if (m.param_types.capacity() > kKeptParams) m = {};
  }
  static void trim(fe::Bind& m) {
    if (std::max({m.param_formats.capacity(), m.params.capacity(), m.result_formats.capacity()}) > kKeptParams) m = {};
  }
  template <class M>
  void backend_typed(const Frame& f, int64_t ts) {
    auto msg = M::decode(f.body, f.offset + 5);
    if (!msg) return backend_undecodable(f.type, msg.error().describe(), ts);
    backend(*msg, ts);
  }

  void dispatch(Direction dir, const Frame& f, int64_t ts, bool truncated) {
    if (f.kind == FrameKind::kTyped && dir == Direction::kFrontend) {
      switch (static_cast<FrontendType>(f.type)) {
        case FrontendType::kParse: return frontend_into(parse_msg, f, ts, truncated);
        case FrontendType::kBind: return frontend_into(bind_msg, f, ts, truncated);
        case FrontendType::kDescribe: return frontend_typed<fe::Describe>(f, ts, truncated);
        case FrontendType::kExecute: return frontend_typed<fe::Execute>(f, ts, truncated);
        case FrontendType::kSync: return frontend_typed<fe::Sync>(f, ts, truncated);
        default: break;
      }
    } else if (f.kind == FrameKind::kTyped) {
      switch (static_cast<BackendType>(f.type)) {
        case BackendType::kParseComplete: return backend_typed<be::ParseComplete>(f, ts);
        case BackendType::kBindComplete: return backend_typed<be::BindComplete>(f, ts);
        case BackendType::kCommandComplete: return backend_typed<be::CommandComplete>(f, ts);
        case BackendType::kReadyForQuery: return backend_typed<be::ReadyForQuery>(f, ts);
        case BackendType::kErrorResponse: return error_frame(f, ts);
        default: break;
      }
    }
    if (dir == Direction::kFrontend) {
      auto msg = decode_frontend(f, password_kind_after(last_auth_code));
      if (!msg) return decode_error(msg.error());
      on_frontend(*msg, ts, truncated);
    } else {
      // Hot path: results. Rows are only counted and row descriptions only
      // matched, so neither is decoded (both would allocate per message).
      if (f.kind == FrameKind::kTyped && (f.type == 'D' || f.type == 'T')) {
        if (Request* r = front()) {
          if (f.type == 'D') {
            ++r->data_rows;
          } else if (r->what == Pending::kDescribe) {
            pop();
          }
        }
        return;
      }
      auto msg = decode_backend(f);
      if (!msg) {
        if (f.kind != FrameKind::kTyped) return decode_error(msg.error());
        return backend_undecodable(f.type, msg.error().describe(), ts);
      }
      on_backend(*msg, ts);
    }
  }

  // The prefix of a frame too large to keep: recover what the prefix holds.
  void dispatch_truncated(const Frame& f, int64_t ts) {
    Reader r(f.body, f.offset + 5);
    switch (f.type) {
      case 'Q': {
        std::string_view sql = as_string_view(f.body);
        frontend(fe::Query{sql}, ts, true);
        break;
      }
      case 'P': {
        fe::Parse p;
        p.statement = r.cstring();
        if (!r.ok()) return decode_error(r.error());
        p.sql = as_string_view(r.rest());
        frontend(p, ts, true);
        break;
      }
      case 'B': {
        fe::Bind b;
        b.portal = r.cstring();
        b.statement = r.cstring();
        if (!r.ok()) return decode_error(r.error());
        frontend(b, ts, true);
        break;
      }
      case 'F': {
        fe::FunctionCall c;
        c.function_oid = r.u32();
        frontend(c, ts, true);
        break;
      }
      default: break;
    }
  }

  void on_close(int64_t ts) {
    while (!queue.empty()) {
      Request& r = queue.front();
      if (r.what == Pending::kQuery || r.what == Pending::kExecute || r.what == Pending::kFunctionCall) {
        // An error already seen (a FATAL, say) is the outcome; otherwise nobody knows.
        finish(r, r.failed ? Outcome::kError : Outcome::kUnknown, ts);
      }
      pop();
    }
  }
};

ConnectionTracker::ConnectionTracker(TrackerOptions opts, Sink sink)
    : impl_(std::make_unique<Impl>(opts, std::move(sink))) {}
ConnectionTracker::~ConnectionTracker() = default;

void ConnectionTracker::on_frame(Direction dir, const Frame& frame, int64_t ts_ns) {
  impl_->on_frame(dir, frame, ts_ns);
}
void ConnectionTracker::on_close(int64_t ts_ns) { impl_->on_close(ts_ns); }
void ConnectionTracker::set_ready_sink(ReadySink sink) { impl_->ready_sink = std::move(sink); }
SessionInfo& ConnectionTracker::session() { return impl_->session; }
const SessionInfo& ConnectionTracker::session() const { return impl_->session; }
PasswordKind ConnectionTracker::password_kind() const { return password_kind_after(impl_->last_auth_code); }
const TrackerStats& ConnectionTracker::stats() const { return impl_->stats; }

}  // namespace pgwire
