#include "recording.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace pgwire::test {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits on runs of spaces/tabs.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t start = line.find_first_not_of(" \t", pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    fields.push_back(line.substr(start, end - start));
    pos = end;
  }
  return fields;
}

template <typename T>
bool parse_decimal(std::string_view text, T& value) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

RecordingParseError::RecordingParseError(const std::string& source, size_t line, const std::string& problem)
    : std::runtime_error(source + ":" + std::to_string(line) + ": " + problem), line_(line) {}

Recording parse_recording(std::string_view text, const std::string& source) {
  Recording recording;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (line.starts_with('#')) {
      line.remove_prefix(1);
      if (line.starts_with(' ')) line.remove_prefix(1);
      recording.comments.emplace_back(line);
      continue;
    }
    std::vector<std::string_view> fields = fields_of(line);
    if (fields.empty()) continue;
    auto fail = [&](const std::string& problem) { throw RecordingParseError(source, line_number, problem); };
    if (fields.size() != 4) {
      fail("expected 4 fields `<conn> <F|B> <usec> <hex>`, got " + std::to_string(fields.size()));
    }
    Chunk chunk;
    if (!parse_decimal(fields[0], chunk.conn)) {
      fail("bad connection index '" + std::string(fields[0]) + "'");
    }
    if (fields[1] != "F" && fields[1] != "B") {
      fail("bad direction '" + std::string(fields[1]) + "' (want F or B)");
    }
    chunk.dir = fields[1][0];
    if (!parse_decimal(fields[2], chunk.usec)) {
      fail("bad microsecond offset '" + std::string(fields[2]) + "'");
    }
    std::string_view hex = fields[3];
    if (hex.size() % 2 != 0) fail("odd number of hex digits");
    chunk.bytes.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
      int hi = hex_value(hex[i]);
      int lo = hex_value(hex[i + 1]);
      if (hi < 0 || lo < 0) fail("bad hex digit at column " + std::to_string(i + 1));
      chunk.bytes.push_back(static_cast<std::byte>(hi * 16 + lo));
    }
    recording.chunks.push_back(std::move(chunk));
  }
  return recording;
}

Recording load_recording(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open recording " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_recording(text.str(), path);
}

std::string format_recording(const Recording& recording) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const auto& comment : recording.comments) {
    // A comment must stay one line: split embedded newlines into several.
    std::string_view rest = comment;
    do {
      size_t nl = rest.find('\n');
      std::string_view piece = rest.substr(0, nl);
      out += piece.empty() ? "#" : "# ";
      out += piece;
      out += '\n';
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    } while (!rest.empty());
  }
  for (const auto& chunk : recording.chunks) {
    if (chunk.bytes.empty()) continue;  // the format has no empty chunks
    out += std::to_string(chunk.conn);
    out += ' ';
    out += chunk.dir;
    out += ' ';
    out += std::to_string(chunk.usec);
    out += ' ';
    for (std::byte b : chunk.bytes) {
      auto v = std::to_integer<unsigned>(b);
      out += kDigits[v >> 4];
      out += kDigits[v & 0xf];
    }
    out += '\n';
  }
  return out;
}

void save_recording(const std::string& path, const Recording& recording) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << format_recording(recording);
  out.close();
  if (!out) throw std::runtime_error("cannot write recording " + path);
}

std::vector<int> connections(const Recording& recording) {
  std::set<int> seen;
  for (const auto& chunk : recording.chunks) seen.insert(chunk.conn);
  return {seen.begin(), seen.end()};
}

std::vector<std::byte> stream_bytes(const Recording& recording, int conn, char dir) {
  std::vector<std::byte> bytes;
  for (const auto& chunk : recording.chunks) {
    if (chunk.conn == conn && chunk.dir == dir) {
      bytes.insert(bytes.end(), chunk.bytes.begin(), chunk.bytes.end());
    }
  }
  return bytes;
}

}  // namespace pgwire::test
