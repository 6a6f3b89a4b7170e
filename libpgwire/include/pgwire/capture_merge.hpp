// Reads several captures as one stream of records in timestamp order, in
// constant memory: one buffered record per file.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pgwire/capture.hpp"
#include "pgwire/capture_read_ahead.hpp"

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

  // Opens every file ("-" = stdin); failures are returned, the rest read.
  // With read_ahead, regular files are read on threads of their own
  // (CaptureReadAhead); the records and errors are the same.
  std::vector<std::string> open(const std::vector<std::string>& paths, bool read_ahead = false);
  // The next record across all files by (timestamp, file order); nullptr at
  // the end. Damaged files stop at their damage, recorded in damage().
  const CaptureRecord* next();
  const std::vector<Damage>& damage() const { return damage_; }
  // Progress: bytes consumed and total size of the regular files (0 if unknown).
  uint64_t consumed() const;
  uint64_t total_size() const { return total_size_; }
  // The file the last record returned by next() came from.
  const std::string& current_file() const { return current_file_; }
  size_t files() const { return inputs_.size(); }

 private:
  struct Input {
    // Read on this thread (reader, into rec), or with read-ahead on a
    // thread of its own (ahead, which then owns the reader).
    std::unique_ptr<CaptureReader> reader;
    std::unique_ptr<CaptureReadAhead> ahead;
    CaptureRecord rec;
    std::string path;
    OwnedRecord head;
    bool has_head = false;
    bool done = false;
  };
  // The input's next record (valid until the next read), nullptr at its end.
  static Result<const CaptureRecord*> read(Input& in);
  static uint64_t offset(const Input& in);
  void advance(Input& in);
  uint64_t session_id(size_t file, uint64_t id, bool closing);
  std::vector<Input> inputs_;
  std::vector<Damage> damage_;
  uint64_t total_size_ = 0;
  OwnedRecord current_;
  std::string current_file_;
  // With several files, session ids are renumbered in order of appearance so
  // two proxies' session 1 stay apart; one file keeps its ids.
  std::map<std::pair<size_t, uint64_t>, uint64_t> renumbered_;
  uint64_t next_session_ = 1;
};

}  // namespace pgwire
