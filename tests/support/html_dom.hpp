// Reading the tools' HTML reports in tests: our own markup, and the DOM a
// real browser (Debian's chromium, headless) serialized after loading it.
// Shared by pgdump-log's and pgreplay's report tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "subprocess.hpp"

namespace pgwire::test::html {

// ---------------------------------------------------------------------------
// Reading the page (ours or the browser's serialization of its DOM) without a
// parser: our markup is regular, and the tests look for exact shapes in it.

// The value of attribute `name` in the tag starting at `tag`; nullopt if none.
inline std::optional<std::string> attr(std::string_view tag, std::string_view name) {
  const size_t end = tag.find('>');
  const std::string key = " " + std::string(name) + "=\"";
  const size_t at = tag.substr(0, end).find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const size_t from = at + key.size();
  return std::string(tag.substr(from, tag.find('"', from) - from));
}

// Each tag that starts with `prefix` (e.g. "<rect "), from its '<' on.
inline std::vector<std::string_view> tags(std::string_view html, std::string_view prefix) {
  std::vector<std::string_view> out;
  for (size_t at = html.find(prefix); at != std::string_view::npos; at = html.find(prefix, at + 1)) {
    out.push_back(html.substr(at, html.find('>', at) - at + 1));
  }
  return out;
}

// The element with id="id", up to its closing tag (our tables and charts do
// not nest one of their own kind).
inline std::string_view element(std::string_view html, std::string_view id) {
  const size_t at = html.find("id=\"" + std::string(id) + "\"");
  if (at == std::string_view::npos) return {};
  const size_t start = html.rfind('<', at);
  const size_t name_end = html.find_first_of(" >", start);
  const std::string close = "</" + std::string(html.substr(start + 1, name_end - start - 1)) + ">";
  const size_t end = html.find(close, at);
  return html.substr(start, end == std::string_view::npos ? std::string_view::npos : end + close.size() - start);
}

inline uint64_t sum_attr(std::string_view html, std::string_view prefix, std::string_view name) {
  uint64_t sum = 0;
  for (std::string_view t : tags(html, prefix)) sum += std::stoull(attr(t, name).value_or("0"));
  return sum;
}

// Points a path's d attribute draws: one per M or L.
inline size_t path_points(std::string_view path_tag) {
  const std::string d = attr(path_tag, "d").value_or("");
  return static_cast<size_t>(std::count_if(d.begin(), d.end(), [](char c) { return c == 'M' || c == 'L'; }));
}

// The rows of a table's body, each up to its </tr>.
inline std::vector<std::string_view> body_rows(std::string_view table) {
  std::vector<std::string_view> rows;
  const size_t body = table.find("<tbody>");
  if (body == std::string_view::npos) return rows;
  for (size_t at = table.find("<tr", body); at != std::string_view::npos; at = table.find("<tr", at + 1)) {
    rows.push_back(table.substr(at, table.find("</tr>", at) - at));
  }
  return rows;
}

// The data-v values of a row's cells, in order.
inline std::vector<std::string> cell_values(std::string_view row) {
  std::vector<std::string> v;
  for (std::string_view t : tags(row, "<td")) {
    if (auto x = attr(t, "data-v")) v.push_back(*x);
  }
  return v;
}

// data-key -> data-v of the overview cards.
inline std::map<std::string, std::string> cards(std::string_view html) {
  std::map<std::string, std::string> m;
  for (std::string_view t : tags(html, "<span class=\"value"))
    m[attr(t, "data-key").value()] = attr(t, "data-v").value();
  return m;
}

// ---------------------------------------------------------------------------
// Headless chromium.

inline std::string chromium_path() {
  if (const char* env = std::getenv("PGWIRE_CHROMIUM"); env && *env) return env;
  const char* path = std::getenv("PATH");
  return find_executable("chromium", path ? path : "");
}

struct Browser {
  std::string dom;
  std::vector<std::string> console;  // console lines: errors, exceptions, CSP violations, failed loads
};

// Loads `url` (a file:// URL) in a fresh headless chromium, lets its script
// run, and returns the serialized DOM. Chromium 156 writes every console
// message of the page -- console.log/error, uncaught exceptions, CSP
// violations, failed loads -- to stderr as "...:INFO:CONSOLE:<line>] "text",
// source: <url>" with --enable-logging=stderr --v=0 (checked with a page that
// throws: "Uncaught TypeError" came as such a line). Our page logs nothing,
// so any such line is a failure.
// `dir`: a directory of the test's own, for chromium's profile.
inline Browser load_in_chromium(const std::string& dir, const std::string& url) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) {
    ADD_FAILURE() << "chromium is not installed: the HTML report tests load the report in Debian 12's chromium "
                     "(apt-get install chromium, or scripts/install-deps.sh; PGWIRE_CHROMIUM=/path/to/chromium "
                     "for another)";
    return {};
  }
  const std::string profile = dir + "/chromium-profile";
  std::filesystem::create_directories(profile);
  CommandOptions opts;
  // Nothing of the developer's profile, cache or session bus.
  opts.env = {{"HOME", profile},
              {"XDG_CONFIG_HOME", profile},
              {"XDG_CACHE_HOME", profile},
              {"DBUS_SESSION_BUS_ADDRESS", "disabled:"}};
  opts.timeout = std::chrono::seconds(30);  // then the whole process group is killed
  CommandResult r =
      run_command({chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-default-apps",
                   "--disable-sync", "--disable-background-networking", "--disable-component-update",
                   // Only file:// is ever touched: no name resolves, any proxied request goes nowhere.
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--enable-logging=stderr",
                   "--v=0", "--virtual-time-budget=5000", "--dump-dom", url},
                  opts);
  EXPECT_FALSE(r.timed_out) << "chromium did not finish within 30 s: " << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  Browser b;
  b.dom = r.out;
  std::istringstream err(r.err);
  for (std::string line; std::getline(err, line);) {
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) {
      b.console.push_back(line);
    }
  }
  return b;
}

inline std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

}  // namespace pgwire::test::html
