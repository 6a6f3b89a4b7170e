// Binary parameters through pgproxy, against a real PostgreSQL: for each value, the server
// itself makes the binary bytes (a binary-format result of SELECT <literal>), a raw client binds
// them as a binary parameter of SELECT $1 and reads the server's text output of the same value,
// and pgproxy's SQL log must show exactly that text. So the bytes come from the server's *send
// functions and the expected text from its output functions; nothing here is produced by the
// code under test. pgdump-log on the capture must print the same lines.
//
// The wire client is written from scratch on a blocking socket, from the protocol
// documentation, and does not use libpgwire's encoders or decoders.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loopback.hpp"
#include "pg_server.hpp"
#include "pgwire/binary_values.hpp"
#include "pgwire/text.hpp"
#include "proxy_process.hpp"
#include "shared_server.hpp"

namespace pt = pgwire::test;
using pt::ProxyProcess;

namespace {

void put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
uint32_t get32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string message(char type, const std::string& body) {
  std::string out(1, type);
  put32(out, static_cast<uint32_t>(body.size() + 4));
  return out + body;
}
std::string cstr(std::string_view s) { return std::string(s) + '\0'; }

std::string parse_msg(std::string_view sql, const std::vector<uint32_t>& types) {
  std::string b = cstr("") + cstr(sql);
  put16(b, static_cast<uint16_t>(types.size()));
  for (uint32_t t : types) put32(b, t);
  return message('P', b);
}
// One parameter (binary) or none; one result format for all columns.
std::string bind_msg(const std::optional<std::string>& binary_param, uint16_t result_format) {
  std::string b = cstr("") + cstr("");
  if (binary_param) {
    put16(b, 1);
    put16(b, 1);
    put16(b, 1);
    put32(b, static_cast<uint32_t>(binary_param->size()));
    b += *binary_param;
  } else {
    put16(b, 0);
    put16(b, 0);
  }
  put16(b, 1);
  put16(b, result_format);
  return message('B', b);
}
std::string describe_portal_msg() { return message('D', "P" + cstr("")); }
std::string execute_msg() {
  std::string b = cstr("");
  put32(b, 0);
  return message('E', b);
}
std::string sync_msg() { return message('S', ""); }

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

struct Reply {
  std::string error;                       // the ErrorResponse's message, if any
  uint32_t column_type = 0;                // from RowDescription
  std::optional<std::string> first_value;  // first column of the first DataRow (nullopt: NULL or none)
};

class Client {
 public:
  explicit Client(uint16_t port) : fd_(pt::connect_to_loopback(port, 30, 30)) {}
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool send_all(std::string_view data) const {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool read_exact(std::string& out, size_t n) const {
    out.resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  // The next message: type and body; type 0 on EOF or timeout.
  std::pair<char, std::string> next() const {
    std::string head, body;
    if (!read_exact(head, 5)) return {0, {}};
    if (!read_exact(body, get32(head, 1) - 4)) return {0, {}};
    return {head[0], body};
  }
  // Reads up to ReadyForQuery.
  std::optional<Reply> until_ready() const {
    Reply r;
    bool row_seen = false;
    for (;;) {
      auto [type, body] = next();
      switch (type) {
        case 0: return std::nullopt;
        case 'Z': return r;
        case 'E': {
          for (size_t at = 0; at < body.size() && body[at] != '\0';) {
            char code = body[at++];
            size_t end = body.find('\0', at);
            if (code == 'M') r.error = body.substr(at, end - at);
            at = end + 1;
          }
          break;
        }
        case 'T': {  // Int16 count, then name, table OID, column number, type OID, ...
          size_t at = body.find('\0', 2) + 1 + 4 + 2;
          r.column_type = get32(body, at);
          break;
        }
        case 'D': {
          if (row_seen) break;
          row_seen = true;
          auto len = static_cast<int32_t>(get32(body, 2));
          if (len >= 0) r.first_value = body.substr(6, static_cast<size_t>(len));
          break;
        }
        default: break;
      }
    }
  }

 private:
  int fd_;
};

struct Case {
  const char* expr;  // a SQL expression of the type under test
};

// Every type the log decodes, with the values where the text is easy to get wrong.
const Case kCases[] = {
    {"true"},
    {"false"},
    {"(-32768)::int2"},
    {"12345::int2"},
    {"42::int4"},
    {"(-2147483648)::int4"},
    {"9223372036854775807::int8"},
    {"(-1)::int8"},
    {"4294967295::oid"},
    {"0.1::float4"},
    {"1.5::float4"},
    {"123456::float4"},
    {"1e6::float4"},
    {"(-1.23e-5)::float4"},
    {"3.4028235e38::float4"},
    {"1e-45::float4"},
    {"'NaN'::float4"},
    {"'-Infinity'::float4"},
    {"0.1::float8"},
    {"1e15::float8"},
    {"1e16::float8"},
    {"123456789012345.6::float8"},
    {"1e-5::float8"},
    {"0.0001::float8"},
    {"(-0.0)::float8"},
    {"'-0'::float8"},
    {"5e-324::float8"},
    {"1.7976931348623157e308::float8"},
    {"pi()"},
    {"'NaN'::float8"},
    {"'Infinity'::float8"},
    {"'-Infinity'::float8"},
    {"0::numeric"},
    {"123.45::numeric"},
    {"(-0.001)::numeric"},
    {"1e20::numeric"},
    {"'5.00'::numeric"},
    {"0.000000000001::numeric"},
    {"123456789.123456789::numeric"},
    {"(-99999999999999999999.9999)::numeric"},
    {"'-0.000'::numeric"},
    {"'NaN'::numeric"},
    {"'Infinity'::numeric"},
    {"'-Infinity'::numeric"},
    {"'h\xc3\xa9llo \xe2\x9c\x93'::text"},
    {"''::text"},
    {"'it''s'::text"},
    {"E'tab\\there\\nnewline'::text"},
    {"'back\\slash'::text"},
    {"'abc'::varchar"},
    {"'ab'::char(5)"},
    {"'pg_catalog'::name"},
    {"'\\xdeadbeef'::bytea"},
    {"''::bytea"},
    {"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"},
    {"'2024-02-29'::date"},
    {"'4714-11-24 BC'::date"},
    {"'0001-01-01'::date"},
    {"'5874897-12-31'::date"},
    {"'infinity'::date"},
    {"'-infinity'::date"},
    {"'00:00'::time"},
    {"'13:45:30.5'::time"},
    {"'24:00:00'::time"},
    {"'23:59:59.999999'::time"},
    {"'12:00+05:30'::timetz"},
    {"'12:00-08'::timetz"},
    {"'01:02:03.25+05:45:30'::timetz"},
    {"'2000-01-01'::timestamp"},
    {"'1999-12-31 23:59:59.999999'::timestamp"},
    {"'4714-11-24 00:00:00 BC'::timestamp"},
    {"'294276-12-31 23:59:59.999999'::timestamp"},
    {"'1066-10-14 09:00:00.5'::timestamp"},
    {"'infinity'::timestamp"},
    {"'-infinity'::timestamp"},
    {"'2024-06-01 12:34:56.789+02'::timestamptz"},
    {"'0044-03-15 12:00:00+00 BC'::timestamptz"},
    {"'infinity'::timestamptz"},
    {"'1 year 2 mons 3 days 04:05:06.789'::interval"},
    {"'-1 mons +1 day'::interval"},
    {"'-00:00:00.000001'::interval"},
    {"'-1 days +01:00:00'::interval"},
    {"'0'::interval"},
    {"'-178000000 years'::interval"},
    {"'1 mon -1 day -00:00:01'::interval"},
    {"'2562047788:00:54.775807'::interval"},
    {"'{\"a\": [1, 2]}'::json"},
    {"'{\"b\": 1, \"a\": [true, null, \"x\"]}'::jsonb"},
    {"'192.168.0.1'::inet"},
    {"'10.0.0.0/8'::inet"},
    {"'10.1.2.3/8'::inet"},
    {"'::1'::inet"},
    {"'::'::inet"},
    {"'2001:db8::1/64'::inet"},
    {"'::ffff:1.2.3.4'::inet"},
    {"'::1.2.3.4'::inet"},
    {"'1:0:0:1:0:0:1:1'::inet"},
    {"'fe80::1:0:0:0:1'::inet"},
    {"'10.0.0.0/8'::cidr"},
    {"'192.168.1.1/32'::cidr"},
    {"'2001:db8::/32'::cidr"},
    {"'{1,NULL,3}'::int4[]"},
    {"'[0:2]={1,2,3}'::int4[]"},
    {"'{{1,2},{3,4}}'::int4[]"},
    {"'[2:3][-1:0]={{1,2},{3,4}}'::int4[]"},
    {"'{}'::int4[]"},
    {"'{{{1}},{{2}}}'::int8[]"},
    {"ARRAY[1::int2, NULL]"},
    {"ARRAY[1::oid]"},
    {"'{\"a b\",\"\",NULL,\"NULL\",\"null\",\"q\\\"\",\"x\\\\y\",plain,\"{}\"}'::text[]"},
    {"'{ab,\"c d\"}'::varchar[]"},
    {"ARRAY['ab'::char(3)]"},
    {"'{name1}'::name[]"},
    {"ARRAY['\\xdead'::bytea]"},
    {"'{1.5,NaN,-Infinity}'::float8[]"},
    {"ARRAY[0.1::float4]"},
    {"'{1.10,NULL,NaN}'::numeric[]"},
    {"ARRAY[true, false]"},
    {"ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]"},
    {"'{2024-02-29,infinity}'::date[]"},
    {"ARRAY['13:00'::time]"},
    {"ARRAY['12:00+05:30'::timetz]"},
    {"ARRAY['2000-01-01 00:00'::timestamp, '-infinity']"},
    {"ARRAY['2000-01-01 00:00+00'::timestamptz]"},
    {"'{\"1 day\",NULL}'::interval[]"},
    {"ARRAY['[1, 2]'::json]"},
    {"ARRAY['{\"a\": 1}'::jsonb]"},
    {"'{::1,10.0.0.1}'::inet[]"},
    {"ARRAY['10.0.0.0/8'::cidr]"},
};

class BinaryParamsTest : public pt::SharedServerTest<BinaryParamsTest> {};

// What the raw client learnt for one case.
struct Sent {
  std::string expr;
  uint32_t type = 0;
  std::string binary;  // the server's binary form of the value
  std::string text;    // the server's text output of the same value, bound back as binary
};

// The $1=... part pgproxy's text log is expected to show for a decoded value (quoted like a
// text value: control characters escaped, quotes doubled).
std::string expected_literal(const std::string& text, uint32_t type) {
  std::string escaped;
  pgwire::append_escaped(escaped, text);
  std::string out = "'";
  for (char c : escaped) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'::" + std::to_string(type);
}

// The params part of every "SELECT $1" line of a text log, in order.
std::vector<std::string> select_param_fields(const std::string& log) {
  const std::string head = " params=($1=", tail = ") sql: SELECT $1";
  std::vector<std::string> out;
  for (const std::string& line : pt::lines_of(log)) {
    if (line.size() < tail.size() || line.compare(line.size() - tail.size(), tail.size(), tail) != 0) continue;
    size_t from = line.find(head);
    if (from == std::string::npos) continue;
    from += head.size();
    out.push_back(line.substr(from, line.size() - tail.size() - from));
  }
  return out;
}

TEST_F(BinaryParamsTest, DecodedValuesMatchTheServersTextOutput) {
  ProxyProcess proxy(pg(), {"--capture-backend"});
  std::vector<Sent> sent;
  {
    Client c(proxy.port());
    std::string startup;
    put32(startup, 196608);
    startup += cstr("user") + cstr(pg().user()) + cstr("database") + cstr("postgres") + '\0';
    std::string packet;
    put32(packet, static_cast<uint32_t>(startup.size() + 4));
    ASSERT_TRUE(c.send_all(packet + startup));
    ASSERT_TRUE(c.until_ready());
    // timestamptz is logged in UTC: the server must print it so too.
    std::string q = cstr("SET TimeZone = 'UTC'");
    ASSERT_TRUE(c.send_all(message('Q', q)));
    ASSERT_TRUE(c.until_ready());
    for (const Case& k : kCases) {
      SCOPED_TRACE(k.expr);
      Sent s;
      s.expr = k.expr;
      ASSERT_TRUE(c.send_all(parse_msg(std::string("SELECT ") + k.expr, {}) + bind_msg(std::nullopt, 1) +
                             describe_portal_msg() + execute_msg() + sync_msg()));
      std::optional<Reply> r = c.until_ready();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->error, "");
      ASSERT_TRUE(r->first_value);
      s.type = r->column_type;
      s.binary = *r->first_value;
      ASSERT_TRUE(c.send_all(parse_msg("SELECT $1", {s.type}) + bind_msg(s.binary, 0) + execute_msg() + sync_msg()));
      r = c.until_ready();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->error, "");
      ASSERT_TRUE(r->first_value);
      s.text = *r->first_value;
      sent.push_back(s);
    }
  }
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();

  const std::string live = pt::read_text_file(proxy.sql_log());
  std::vector<std::string> fields = select_param_fields(live);
  ASSERT_EQ(fields.size(), sent.size()) << live;
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(fields[i], expected_literal(sent[i].text, sent[i].type))
        << sent[i].expr << " (type " << sent[i].type << ", bytes " << hex(sent[i].binary) << ")";
  }

  // Offline, from the capture: the same text lines; in JSON the server's text, the type's name
  // and its OID.
  pt::CommandResult offline = pt::run_command(
      {pt::tool_path("pgdump-log"), "--no-progress", "--format", "sql", "--log-format", "text", proxy.capture()});
  ASSERT_TRUE(offline.ok()) << offline.describe();
  EXPECT_EQ(offline.out, live);
  offline = pt::run_command(
      {pt::tool_path("pgdump-log"), "--no-progress", "--format", "sql", "--log-format", "json", proxy.capture()});
  ASSERT_TRUE(offline.ok()) << offline.describe();
  std::vector<std::string> json_lines;
  for (const std::string& line : pt::lines_of(offline.out)) {
    if (line.find("\"query\":\"SELECT $1\"") != std::string::npos) json_lines.push_back(line);
  }
  ASSERT_EQ(json_lines.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    std::string want = "\"params\":[\"";
    pgwire::append_json_escaped(want, sent[i].text);
    want += "\"],\"param_formats\":[1],\"param_types\":[\"" + std::string(pgwire::type_name(sent[i].type)) +
            "\"],\"param_type_oids\":[" + std::to_string(sent[i].type) + "]";
    EXPECT_NE(json_lines[i].find(want), std::string::npos) << sent[i].expr << "\n" << json_lines[i];
  }
}

// The log's type names are the server's pg_type.typname for the same OIDs.
TEST_F(BinaryParamsTest, TypeNamesAreTheServersTypnames) {
  std::string oids;
  for (uint32_t oid = 1; oid < 4000; ++oid) {
    if (pgwire::type_name(oid) == nullptr) continue;
    if (!oids.empty()) oids += ',';
    oids += std::to_string(oid);
  }
  pt::CommandResult r = pg().run_admin_psql(
      {"-At", "-F", "=", "-c", "SELECT oid, typname FROM pg_type WHERE oid IN (" + oids + ") ORDER BY oid"});
  ASSERT_TRUE(r.ok()) << r.describe();
  std::string want;
  for (uint32_t oid = 1; oid < 4000; ++oid) {
    if (const char* name = pgwire::type_name(oid)) want += std::to_string(oid) + "=" + name + "\n";
  }
  EXPECT_EQ(r.out, want);
}

// Not decoded, shown as hex with the OID: a type the log does not know (point), a value the
// server refuses (an int4 of 3 bytes), and a value longer than the tracker keeps (64 KiB), which
// is cut and marked so.
TEST_F(BinaryParamsTest, UnknownMalformedAndCutValuesStayHex) {
  ProxyProcess proxy(pg());
  const std::string point = "'(1,2)'::point";
  std::string point_bytes;
  const std::string big(70000, 'z');
  {
    Client c(proxy.port());
    std::string startup;
    put32(startup, 196608);
    startup += cstr("user") + cstr(pg().user()) + cstr("database") + cstr("postgres") + '\0';
    std::string packet;
    put32(packet, static_cast<uint32_t>(startup.size() + 4));
    ASSERT_TRUE(c.send_all(packet + startup));
    ASSERT_TRUE(c.until_ready());
    ASSERT_TRUE(c.send_all(parse_msg("SELECT " + point, {}) + bind_msg(std::nullopt, 1) + describe_portal_msg() +
                           execute_msg() + sync_msg()));
    std::optional<Reply> r = c.until_ready();
    ASSERT_TRUE(r && r->first_value);
    ASSERT_EQ(r->column_type, 600u);
    point_bytes = *r->first_value;
    ASSERT_TRUE(c.send_all(parse_msg("SELECT $1", {600}) + bind_msg(point_bytes, 0) + execute_msg() + sync_msg()));
    r = c.until_ready();
    ASSERT_TRUE(r && r->first_value);
    EXPECT_EQ(*r->first_value, "(1,2)");
    ASSERT_TRUE(c.send_all(parse_msg("SELECT $1", {23}) + bind_msg(std::string("\0\0\x2a", 3), 0) + execute_msg() +
                           sync_msg()));
    r = c.until_ready();
    ASSERT_TRUE(r);
    EXPECT_NE(r->error, "");  // the server refuses it
    ASSERT_TRUE(c.send_all(parse_msg("SELECT length($1)", {25}) + bind_msg(big, 0) + execute_msg() + sync_msg()));
    r = c.until_ready();
    ASSERT_TRUE(r && r->first_value);
    EXPECT_EQ(*r->first_value, "70000");
  }
  ASSERT_EQ(proxy.stop(), 0) << proxy.output();
  const std::string live = pt::read_text_file(proxy.sql_log());
  EXPECT_NE(live.find(" params=($1=x'" + hex(point_bytes) + "'::600) sql: SELECT $1\n"), std::string::npos) << live;
  EXPECT_NE(live.find(" params=($1=x'00002a'::23) sql: SELECT $1\n"), std::string::npos) << live;
  EXPECT_NE(live.find(" params=($1=x'" + hex(big.substr(0, 65536)) +
                      "'...(cut, 70000 bytes in all)::25) sql: SELECT length($1)\n"),
            std::string::npos);
}

}  // namespace
