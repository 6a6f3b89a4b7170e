#include "pgwire/capture_merge.hpp"

#include "pgwire/system.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

namespace pgwire {

void OwnedRecord::assign(const CaptureRecord& r) {
  rec = r;
  client.assign(r.client);
  server.assign(r.server);
  reason.assign(r.reason);
  key.assign(r.key);
  data.assign(r.data.begin(), r.data.end());
  value.assign(r.value.begin(), r.value.end());
}

const CaptureRecord& OwnedRecord::view() {
  rec.client = client;
  rec.server = server;
  rec.reason = reason;
  rec.key = key;
  rec.data = Bytes{data.data(), data.size()};
  rec.value = Bytes{value.data(), value.size()};
  return rec;
}

MergedReader::Member::Member(Member&& o) noexcept { *this = std::move(o); }

MergedReader::Member& MergedReader::Member::operator=(Member&& o) noexcept {
  if (this == &o) return *this;
  if (fd >= 0) ::close(fd);
  path = std::move(o.path);
  set_index = o.set_index;
  size = o.size;
  regular = o.regular;
  reader = std::move(o.reader);
  pcap = std::move(o.pcap);
  fd = std::exchange(o.fd, -1);
  created_ns = o.created_ns;
  set_id = o.set_id;
  return *this;
}

MergedReader::Member::~Member() {
  if (fd >= 0) ::close(fd);
}

namespace {

// "3", "3-5", "0-2, 7": the set indexes in [from, to] and the like, for messages.
void append_range(std::string& out, uint64_t from, uint64_t to) {
  if (!out.empty()) out += ", ";
  out += from == to ? fmt::format("{}", from) : fmt::format("{}-{}", from, to);
}

// For descriptors someone made non-blocking: wait instead of failing with EAGAIN.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    if (::poll(&p, 1, -1) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// A capture file or a packet capture, told apart by their first bytes (on
// a pipe too: what was read to see is handed to the reader).
struct AnyReader {
  std::unique_ptr<CaptureReader> capture;
  std::unique_ptr<PcapReader> pcap;
};

Result<AnyReader> open_any(const std::string& path, const PcapOptions& pcap_opts) {
  const bool is_stdin = path == "-";
  const int fd = is_stdin ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{Errc::kIo, 0, fmt::format("open {}: {}", path, errno_text(errno))};
  const std::string name = is_stdin ? "<stdin>" : path;
  std::byte head[4];
  size_t have = 0;
  while (have < sizeof head) {
    const ssize_t n = ::read(fd, head + have, sizeof head - have);
    if (n > 0) {
      have += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_readable(fd)) continue;
    const int err = errno;
    if (!is_stdin) ::close(fd);
    return Error{Errc::kIo, 0, fmt::format("read {}: {}", name, errno_text(err))};
  }
  AnyReader any;
  const Bytes prefix{head, have};
  if (is_packet_capture_magic(prefix)) {
    auto r = PcapReader::from_fd(fd, !is_stdin, name, prefix, pcap_opts);
    if (!r) return r.error();
    any.pcap = std::move(r).value();
    return any;
  }
  auto r = CaptureReader::from_fd(fd, !is_stdin, name, prefix);
  if (!r) return r.error();
  any.capture = std::move(r).value();
  return any;
}

struct Opened {
  std::string path;
  std::unique_ptr<CaptureReader> reader;
  std::unique_ptr<PcapReader> pcap;
  struct stat st {};
  bool regular = false;
  size_t order = 0;  // in the order given
  uint64_t set_id = 0;
  uint32_t set_index = 0;
};

// The capture files a directory holds, by name: regular files whose
// (decompressed) first bytes are a capture's magic. A compression's .tmp is
// left out: it is incomplete by design.
void open_directory(const std::string& dir, std::vector<Opened>& out, std::vector<std::string>& errors,
                    std::vector<MergedReader::Damage>& damage, const PcapOptions& pcap_opts) {
  std::error_code ec;
  std::vector<std::string> names;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // subdirectories, sockets, broken links
    std::string name = it->path().filename().string();
    if (name.ends_with(".tmp")) continue;
    names.push_back(it->path().string());
  }
  if (ec) {
    errors.push_back(fmt::format("{}: {}", dir, ec.message()));
    return;
  }
  std::sort(names.begin(), names.end());
  size_t found = 0;
  for (std::string& path : names) {
    auto r = open_any(path, pcap_opts);
    if (!r) {
      if (r.error().code == Errc::kBadMagic) continue;  // not a capture: the SQL log, say
      ++found;
      if (r.error().code == Errc::kIo) {
        errors.push_back(path + ": " + r.error().message);
      } else {
        damage.push_back({path, r.error()});
      }
      continue;
    }
    ++found;
    Opened o;
    o.path = std::move(path);
    o.reader = std::move(r->capture);
    o.pcap = std::move(r->pcap);
    o.regular = ::stat(o.path.c_str(), &o.st) == 0 && S_ISREG(o.st.st_mode);
    out.push_back(std::move(o));
  }
  if (found == 0) errors.push_back(dir + ": no capture files in this directory");
}

bool same_header(const CaptureReader& a, const CaptureReader& b) {
  return a.set_id() == b.set_id() && a.set_index() == b.set_index() && a.created_ns() == b.created_ns() &&
         a.creator_pid() == b.creator_pid() && a.creator() == b.creator();
}

}  // namespace

std::vector<std::string> MergedReader::open(const std::vector<std::string>& paths, bool read_ahead) {
  std::vector<std::string> errors;
  read_ahead_ = read_ahead;
  std::vector<Opened> opened;
  for (const std::string& p : paths) {
    struct stat st {};
    if (p != "-" && ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      open_directory(p, opened, errors, damage_, pcap_opts_);
      continue;
    }
    auto r = open_any(p, pcap_opts_);
    if (!r) {
      if (r.error().code == Errc::kIo) {
        errors.push_back(p + ": " + r.error().message);
      } else {
        // Not a capture, or a header we cannot read: that is damage, reported the same way.
        damage_.push_back({p, r.error()});
      }
      continue;
    }
    Opened o;
    o.path = p;
    o.reader = std::move(r->capture);
    o.pcap = std::move(r->pcap);
    o.regular = p != "-" && ::stat(p.c_str(), &o.st) == 0 && S_ISREG(o.st.st_mode);
    opened.push_back(std::move(o));
  }
  for (size_t i = 0; i < opened.size(); ++i) {
    opened[i].order = i;
    if (!opened[i].reader) continue;  // a packet capture: never part of a set
    opened[i].set_id = opened[i].reader->set_id();
    opened[i].set_index = opened[i].reader->set_index();
  }

  // The files of one set make one input, in set_index order; any other file
  // is an input of its own. An input comes where its first file was given.
  std::map<uint64_t, size_t> set_input;  // set_id -> index in by_order
  std::vector<std::pair<size_t, Input>> by_order;
  auto member_of = [](Opened& o) {
    Member m;
    m.path = o.path;
    m.set_index = o.set_index;
    m.set_id = o.set_id;
    m.created_ns = o.reader ? o.reader->created_ns() : 0;
    m.regular = o.regular;
    m.size = o.regular ? static_cast<uint64_t>(o.st.st_size) : 0;
    return m;
  };
  std::map<uint64_t, std::vector<Opened*>> sets;
  for (Opened& o : opened) {
    if (o.set_id != 0) sets[o.set_id].push_back(&o);
  }
  for (auto& [id, files] : sets) {
    std::stable_sort(files.begin(), files.end(),
                     [](const Opened* a, const Opened* b) { return a->set_index < b->set_index; });
  }
  for (Opened& o : opened) {
    if (o.set_id == 0) {
      Input in;
      Member m = member_of(o);
      m.reader = std::move(o.reader);
      m.pcap = std::move(o.pcap);
      if (m.pcap) ++packet_captures_;
      in.members.push_back(std::move(m));
      by_order.emplace_back(o.order, std::move(in));
      continue;
    }
    const uint64_t id = o.set_id;
    if (set_input.count(id)) continue;
    set_input[id] = by_order.size();
    Input in;
    size_t first_order = o.order;
    const Opened* previous = nullptr;
    for (Opened* f : sets[id]) {
      first_order = std::min(first_order, f->order);
      if (previous && previous->set_index == f->set_index) {
        const bool same_file = previous->regular && f->regular && previous->st.st_dev == f->st.st_dev &&
                               previous->st.st_ino == f->st.st_ino;
        if (same_file) continue;  // given twice (a directory and a file in it): read once
        if (same_header(*previous->reader, *f->reader)) {
          warnings_.push_back(
              fmt::format("{} and {} hold the same file of capture set {:016x} (index {}), "
                          "one of them compressed: only {} is read",
                          previous->path, f->path, id, f->set_index, previous->path));
        } else {
          errors.push_back(fmt::format("{} and {} both claim index {} of capture set {:016x}: {} is not read",
                                       previous->path, f->path, f->set_index, id, f->path));
        }
        continue;
      }
      Member m = member_of(*f);
      previous = f;
      in.members.push_back(std::move(m));
    }
    // Only the first file's reader is kept open; the others keep a
    // descriptor (a pipe, its reader) until their turn.
    for (size_t k = 0; k < in.members.size(); ++k) {
      Member& m = in.members[k];
      for (Opened* f : sets[id]) {
        if (f->path != m.path || !f->reader) continue;
        if (k == 0 || !m.regular) {
          m.reader = std::move(f->reader);
        } else {
          m.fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);  // -1: opened by path later
          f->reader.reset();
        }
        break;
      }
    }
    // What is missing is said, not guessed.
    std::string missing;
    uint64_t expected = 0;
    for (const Member& m : in.members) {
      if (m.set_index > expected) append_range(missing, expected, m.set_index - 1);
      expected = uint64_t{m.set_index} + 1;
    }
    if (!missing.empty()) {
      warnings_.push_back(
          fmt::format("capture set {:016x}: index {} not read (deleted by --rotate-keep, or not given; the first file "
                      "of the set read is {}): sessions that span the missing files are partial, and those open at a "
                      "gap end there",
                      id, missing, in.members.front().path));
    }
    by_order.emplace_back(first_order, std::move(in));
  }
  std::stable_sort(by_order.begin(), by_order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, in] : by_order) {
    for (const Member& m : in.members) {
      total_size_ += m.size;
      ++files_;
    }
    inputs_.push_back(std::move(in));
  }
  // With several inputs the merge needs every input's first record.
  if (inputs_.size() > 1) {
    for (Input& in : inputs_) advance(in);
  }
  return errors;
}

// A file of a set again, from its descriptor if it was kept, else by name.
Result<std::unique_ptr<CaptureReader>> MergedReader::reopen(Member& m) {
  if (m.fd < 0) return CaptureReader::open(m.path);
  const int fd = std::exchange(m.fd, -1);
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    const int err = errno;
    ::close(fd);
    return Error{Errc::kIo, 0, fmt::format("seek {}: {}", m.path, errno_text(err))};
  }
  return CaptureReader::from_fd(fd, true, m.path);
}

// Opens the input's current file; false when there is none left. A file that
// cannot be opened (again) is damage, and a gap in the set.
bool MergedReader::start_member(Input& in) {
  while (in.member < in.members.size()) {
    Member& m = in.members[in.member];
    if (m.pcap) {
      in.pcap = std::move(m.pcap);
      return true;
    }
    std::unique_ptr<CaptureReader> reader = std::move(m.reader);
    if (!reader) {
      Result<std::unique_ptr<CaptureReader>> r = reopen(m);
      if (r && ((*r)->set_id() != m.set_id || (*r)->set_index() != m.set_index || (*r)->created_ns() != m.created_ns)) {
        r = Error{Errc::kIo, 0,
                  fmt::format("{} is no longer index {} of capture set {:016x}: it was replaced while the set was read",
                              m.path, m.set_index, m.set_id)};
      }
      if (!r) {
        damage_.push_back({m.path, r.error()});
        next_member(in, fmt::format("capture data missing: {} could not be read", m.path));
        continue;
      }
      reader = std::move(r).value();
    }
    if (read_ahead_ && m.regular) {
      in.ahead = std::make_unique<CaptureReadAhead>(std::move(reader), true);
    } else {
      in.reader = std::move(reader);
    }
    return true;
  }
  return false;
}

// Done with the input's current file. Where the set's data does not go on
// (`reason`, or a gap before the next file), the sessions open so far end.
void MergedReader::next_member(Input& in, std::string reason) {
  in.done_bytes += in.members[in.member].size;
  if (in.pcap) {
    const PcapStats& s = in.pcap->stats();
    PcapStats& t = pcap_stats_;
    t.packets += s.packets;
    t.tcp_packets += s.tcp_packets;
    t.fragments += s.fragments;
    t.malformed += s.malformed;
    t.unsupported_link += s.unsupported_link;
    t.sessions += s.sessions;
    t.partial_sessions += s.partial_sessions;
    t.encrypted_sessions += s.encrypted_sessions;
    t.damaged_sessions += s.damaged_sessions;
    t.not_postgres += s.not_postgres;
    t.duplicate_segments += s.duplicate_segments;
    t.early_segments += s.early_segments;
    t.buffer_limit_hits += s.buffer_limit_hits;
    t.peak_buffered = std::max(t.peak_buffered, s.peak_buffered);
    in.pcap.reset();
  }
  in.reader.reset();
  in.ahead.reset();
  const size_t next = in.member + 1;
  if (next < in.members.size()) {
    const uint32_t at = in.members[in.member].set_index, then = in.members[next].set_index;
    if (reason.empty() && then > at + 1) {
      std::string range;
      append_range(range, uint64_t{at} + 1, uint64_t{then} - 1);
      reason = fmt::format("capture data missing: index {} of the set not read", range);
    }
    if (!reason.empty() && !in.open_sessions.empty()) {
      std::vector<uint64_t> ids(in.open_sessions.begin(), in.open_sessions.end());
      std::sort(ids.begin(), ids.end());
      in.to_close.assign(ids.begin(), ids.end());
      in.open_sessions.clear();
      in.close_reason = std::move(reason);
    }
  }
  in.member = next;
}

const CaptureRecord* MergedReader::read(Input& in) {
  for (;;) {
    if (!in.to_close.empty()) {
      OwnedRecord& made = in.made;
      made.rec = CaptureRecord{};
      made.rec.type = CaptureRecordType::kSessionClose;
      made.rec.session_id = in.to_close.front();
      made.rec.ts_ns = in.last_ts;
      made.reason = in.close_reason;
      made.client.clear();
      made.server.clear();
      made.key.clear();
      made.data.clear();
      made.value.clear();
      in.to_close.pop_front();
      return &made.view();
    }
    if (in.done) return nullptr;
    if (!in.reader && !in.ahead && !in.pcap) {
      if (!start_member(in)) {
        in.done = true;
        return nullptr;
      }
    }
    const std::string& path = in.members[in.member].path;
    Result<const CaptureRecord*> r = nullptr;
    if (in.pcap) {
      Result<bool> more = in.pcap->next(in.rec);
      // Damage that ended a session, not the file: reported, and reading goes on.
      for (Error& e : in.pcap->take_damage()) damage_.push_back({path, std::move(e)});
      if (!more) {
        r = more.error();
      } else if (*more) {
        r = &in.rec;
      }
    } else if (in.ahead) {
      r = in.ahead->next();
    } else {
      Result<bool> more = in.reader->next(in.rec);
      if (!more) {
        r = more.error();
      } else if (*more) {
        r = &in.rec;
      }
    }
    if (!r) {
      damage_.push_back({path, r.error()});
      next_member(in, fmt::format("capture data missing: the rest of {} is damaged", path));
      continue;
    }
    if (!*r) {
      next_member(in, {});
      continue;
    }
    const CaptureRecord* rec = *r;
    if (in.members.size() > 1 && rec->session_id != 0) {
      // Which sessions are open, for a gap; and the writer's repetition of
      // an open session's SessionOpen at the start of a file is left out.
      if (rec->type == CaptureRecordType::kSessionOpen) {
        if (!in.open_sessions.insert(rec->session_id).second) continue;
      } else if (rec->type == CaptureRecordType::kSessionClose) {
        in.open_sessions.erase(rec->session_id);
      } else {
        in.open_sessions.insert(rec->session_id);
      }
    }
    in.last_ts = rec->ts_ns;
    current_file_ = &path;
    return rec;
  }
}

void MergedReader::advance(Input& in) {
  in.has_head = false;
  const CaptureRecord* r = read(in);
  if (!r) return;
  in.head.assign(*r);
  in.head_file = current_file_;
  in.has_head = true;
}

const CaptureRecord* MergedReader::next() {
  if (inputs_.size() == 1) {
    // One input: no ordering to do, so no copy either; the record's views
    // stay in the reader's buffer until the next call.
    return read(inputs_[0]);
  }
  Input* best = nullptr;
  for (Input& in : inputs_) {
    if (!in.has_head) continue;
    if (!best || in.head.rec.ts_ns < best->head.rec.ts_ns) best = &in;
  }
  if (!best) return nullptr;
  std::swap(current_, best->head);
  const std::string* file = best->head_file;
  const size_t input = static_cast<size_t>(best - inputs_.data());
  advance(*best);
  current_file_ = file;
  const CaptureRecord& rec = current_.view();
  current_.rec.session_id = session_id(input, rec.session_id, rec.type == CaptureRecordType::kSessionClose);
  return &current_.rec;
}

uint64_t MergedReader::session_id(size_t input, uint64_t id, bool closing) {
  auto key = std::make_pair(input, id);
  auto it = renumbered_.find(key);
  if (it == renumbered_.end()) it = renumbered_.emplace(key, next_session_++).first;
  uint64_t mapped = it->second;
  if (closing) renumbered_.erase(it);
  return mapped;
}

const std::string& MergedReader::current_file() const {
  static const std::string kNone;
  return current_file_ ? *current_file_ : kNone;
}

uint64_t MergedReader::consumed() const {
  uint64_t n = 0;
  for (const Input& in : inputs_) {
    n += in.done_bytes;
    if (in.pcap) {
      n += in.pcap->input_offset();
    } else if (in.ahead) {
      n += in.ahead->input_offset();
    } else if (in.reader) {
      n += in.reader->input_offset();
    }
  }
  return n;
}

}  // namespace pgwire
