// Reads several captures as one stream of records in timestamp order, in
// constant memory: one buffered record per input.
//
// An input is a capture file, or a rotated set: the files that share a
// non-zero set_id (docs/capture-format.md section 3.2), read one after
// another in set_index order as one stream with one space of session ids, so
// a session that goes on from one file into the next is one session. Inputs
// are merged by timestamp; with several inputs, session ids are renumbered
// so that two proxies' session 1 stay apart. A directory stands for the
// capture files in it. Files may be zstd-compressed (CaptureReader).
//
// An input may also be a packet capture (pcap or pcapng, recognised by its
// magic, on stdin too): its PostgreSQL connections are read as sessions
// (PcapReader), merged with the other inputs like any capture file.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "pgwire/capture.hpp"
#include "pgwire/capture_read_ahead.hpp"
#include "pgwire/pcap_reader.hpp"

namespace pgwire {

// A record copied out of its reader's buffer.
struct OwnedRecord {
  CaptureRecord rec;
  std::string client, server, reason, key;
  std::vector<std::byte> data, value;
  void assign(const CaptureRecord& r);
  // Points rec's views at this object's storage.
  const CaptureRecord& view();
};

class MergedReader {
 public:
  struct Damage {
    std::string file;
    Error error;
  };

  // Opens every path ("-" = stdin), once; a directory stands for the regular files
  // in it whose (decompressed) first bytes are a capture's magic, others (a
  // SQL log, compressed or not; a compression's .tmp) are left out. Files
  // with one set_id make one input (see above). Returns what could not be
  // opened ("PATH: reason"), and two different files that claim the same
  // place in a set (the later one is not read); a file whose header is
  // damaged goes to damage(). The rest is read.
  // With read_ahead, regular files are read on threads of their own
  // (CaptureReadAhead); the records and errors are the same.
  std::vector<std::string> open(const std::vector<std::string>& paths, bool read_ahead = false);
  // How packet captures are read (ports, limits): set before open().
  void set_pcap_options(PcapOptions opts) { pcap_opts_ = std::move(opts); }
  // The next record across all inputs by (timestamp, input order); nullptr at
  // the end. Valid until the next call. Damaged files stop at their damage,
  // recorded in damage(); a set goes on with its next file. Where a set's
  // data is missing (a gap in its set_index, or a damaged or unreadable
  // file), the sessions open there end with a SessionClose this reader makes
  // ("capture data missing: ..."), at the time of the set's last record
  // before it: their records after the gap are read as another, partial,
  // session (CaptureDecoder). A SessionOpen that a set's writer repeated at
  // the start of a later file, for a session already open, is left out.
  const CaptureRecord* next();
  const std::vector<Damage>& damage() const { return damage_; }
  // What is not damage but changes what the output means: indexes missing
  // from a set, the same file given twice. Known after open().
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Progress: bytes of the files used so far, and their total size (regular
  // files only; 0 if unknown). For a compressed file, compressed bytes.
  uint64_t consumed() const;
  uint64_t total_size() const { return total_size_; }
  // The file the last record returned by next() came from.
  const std::string& current_file() const;
  size_t files() const { return files_; }           // files to read, every file of every set
  size_t inputs() const { return inputs_.size(); }  // sets and single files
  // Packet captures: how many were given, and what they held besides the
  // sessions (summed over those read to their end so far).
  size_t packet_captures() const { return packet_captures_; }
  const PcapStats& pcap_stats() const { return pcap_stats_; }

 private:
  // One file of an input.
  struct Member {
    Member() = default;
    Member(Member&& o) noexcept;
    Member& operator=(Member&& o) noexcept;
    ~Member();
    std::string path;
    uint32_t set_index = 0;
    uint64_t size = 0;  // of a regular file; 0 otherwise
    bool regular = false;
    // The reader open() used to read the header: kept for the first file of
    // an input and for those that cannot be reopened (a pipe)...
    std::unique_ptr<CaptureReader> reader;
    std::unique_ptr<PcapReader> pcap;  // a packet capture (never part of a set)
    // ...the others keep their descriptor, rewound when their turn comes
    // (the file may have been renamed or removed by a rotation meanwhile).
    // -1 when it could not be kept (too many files): opened by path again.
    int fd = -1;
    int64_t created_ns = 0;  // the header, to check a file opened again
    uint64_t set_id = 0;
  };
  struct Input {
    std::vector<Member> members;
    size_t member = 0;  // the file being read
    // Read on this thread (reader, into rec), or with read-ahead on a
    // thread of its own (ahead, which then owns the reader).
    std::unique_ptr<CaptureReader> reader;
    std::unique_ptr<CaptureReadAhead> ahead;
    std::unique_ptr<PcapReader> pcap;
    CaptureRecord rec;
    OwnedRecord head;  // the next record, with several inputs
    const std::string* head_file = nullptr;
    bool has_head = false;
    bool done = false;
    uint64_t done_bytes = 0;  // sizes of the files read to their end
    int64_t last_ts = 0;
    // Sets of several files: the sessions open so far, and those to end
    // (with close_reason) before the next file is read.
    std::unordered_set<uint64_t> open_sessions;
    std::deque<uint64_t> to_close;
    std::string close_reason;
    OwnedRecord made;  // a SessionClose this reader made
  };
  // The input's next record (valid until the next read), nullptr at its end.
  const CaptureRecord* read(Input& in);
  static Result<std::unique_ptr<CaptureReader>> reopen(Member& m);
  bool start_member(Input& in);
  void next_member(Input& in, std::string reason);
  void advance(Input& in);
  uint64_t session_id(size_t input, uint64_t id, bool closing);
  std::vector<Input> inputs_;
  std::vector<Damage> damage_;
  std::vector<std::string> warnings_;
  bool read_ahead_ = false;
  size_t files_ = 0;
  uint64_t total_size_ = 0;
  OwnedRecord current_;
  const std::string* current_file_ = nullptr;
  // With several inputs, session ids are renumbered in order of appearance
  // so two proxies' session 1 stay apart; one input keeps its ids.
  std::map<std::pair<size_t, uint64_t>, uint64_t> renumbered_;
  uint64_t next_session_ = 1;
  PcapOptions pcap_opts_;
  size_t packet_captures_ = 0;
  PcapStats pcap_stats_;
};

}  // namespace pgwire
