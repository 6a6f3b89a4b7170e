#include "pgwire/normalize.hpp"

namespace pgwire {
namespace {

bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80 || c == '$';
}
bool digit(char c) { return c >= '0' && c <= '9'; }

// End of a quoted run starting at s[i] == quote, with doubled quotes inside
// (and backslash escapes when `backslash`). Unterminated: end of input.
size_t skip_quoted(std::string_view s, size_t i, char quote, bool backslash) {
  for (++i; i < s.size(); ++i) {
    if (backslash && s[i] == '\\') {
      ++i;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return s.size();
}

// "$tag$" at s[i]: length of the tag with both dollars, or 0.
size_t dollar_tag(std::string_view s, size_t i) {
  size_t j = i + 1;
  if (j < s.size() && digit(s[j])) return 0;  // $1 is a parameter
  while (j < s.size() && s[j] != '$' && ident_char(s[j])) ++j;
  return j < s.size() && s[j] == '$' ? j - i + 1 : 0;
}

void collapse_placeholder_lists(std::string& out) {
  // "(?, ?" becomes "(?, ..." and "?, ..., ?" loses its last ", ?": a list of
  // any length reads "(?, ...)".
  auto ends_with = [&](std::string_view t) {
    return out.size() >= t.size() && out.compare(out.size() - t.size(), t.size(), t) == 0;
  };
  if (ends_with("(?, ?")) {
    out.resize(out.size() - 1);
    out += "...";
  } else if (ends_with("?, ..., ?")) {
    out.resize(out.size() - 3);
  }
}

// A '-' just written is a sign, not an operator, when what precedes it cannot
// end an operand: drop it so "-3" and "3" normalize alike.
bool drop_sign(std::string& out) {
  if (out.empty() || out.back() != '-') return false;
  size_t j = out.size() - 1;
  while (j > 0 && out[j - 1] == ' ') --j;
  char prev = j > 0 ? out[j - 1] : '(';
  if (ident_char(prev) || prev == ')' || prev == '?' || prev == '"' || prev == ']') return false;
  out.resize(j);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return true;
}

}  // namespace

std::string normalize_sql(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  auto emit = [&](std::string_view piece) {
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    out += piece;
  };
  auto placeholder = [&] {
    emit("?");
    collapse_placeholder_lists(out);
  };
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      pending_space = true;
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
      pending_space = true;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      int depth = 0;  // PostgreSQL block comments nest
      while (i < s.size()) {
        if (s.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (s.compare(i, 2, "*/") == 0) {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      pending_space = true;
    } else if (c == '\'') {
      i = skip_quoted(s, i, '\'', false);
      placeholder();
    } else if ((c == 'E' || c == 'e' || c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') &&
               i + 1 < s.size() && s[i + 1] == '\'' && (out.empty() || pending_space || !ident_char(out.back()))) {
      i = skip_quoted(s, i + 1, '\'', c == 'E' || c == 'e');
      placeholder();
    } else if (c == '"') {
      size_t end = skip_quoted(s, i, '"', false);
      emit(s.substr(i, end - i));
      i = end;
    } else if (c == '$') {
      if (i + 1 < s.size() && digit(s[i + 1])) {
        for (++i; i < s.size() && digit(s[i]);) ++i;
        placeholder();
      } else if (size_t tag = dollar_tag(s, i); tag > 0) {
        size_t end = s.find(s.substr(i, tag), i + tag);
        i = end == std::string_view::npos ? s.size() : end + tag;
        placeholder();
      } else {
        emit("$");
        ++i;
      }
    } else if (digit(c) || (c == '.' && i + 1 < s.size() && digit(s[i + 1]))) {
      if (!out.empty() && !pending_space && ident_char(out.back())) {
        // part of an identifier such as t1
        out += c;
        ++i;
        continue;
      }
      while (i < s.size() && (digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '_' ||
                              ((s[i] == '+' || s[i] == '-') && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
        ++i;
      if (!pending_space && drop_sign(out) && !out.empty() && out.back() != '(') pending_space = true;
      placeholder();
    } else if (ident_char(c)) {
      size_t j = i;
      while (j < s.size() && ident_char(s[j])) ++j;
      emit(s.substr(i, j - i));
      i = j;
    } else {
      // Punctuation: no space before , ) ; and none after (
      if (c == ',' || c == ')' || c == ';' || (c == '(' && !pending_space)) pending_space = false;
      if (c == ';' && i + 1 >= s.size()) {
        ++i;
        continue;  // a trailing semicolon does not make another statement
      }
      if ((c == ',' || c == ')' || c == ';')) {
        out += c;
      } else {
        emit(std::string_view(&s[i], 1));
      }
      if (c == ',') pending_space = true;
      if (c == '(') pending_space = false;
      ++i;
      if (c == '(') {
        // skip whitespace right after '('
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
      }
    }
  }
  return out;
}

uint64_t fingerprint_of_normalized(std::string_view normalized) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : normalized) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string fingerprint_hex(uint64_t fingerprint) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[fingerprint & 0xf];
    fingerprint >>= 4;
  }
  return out;
}

}  // namespace pgwire
