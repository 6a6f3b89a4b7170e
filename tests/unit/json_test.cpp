// JsonWriter: the shape (commas, nesting, keys), escaping and numbers, against
// JSON text written by hand from RFC 8259.
#include "pgwire/json.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace pgwire {
namespace {

TEST(JsonWriter, CommasBetweenElementsNeverAfterAKey) {
  std::string out;
  JsonWriter j(out);
  j.begin_object();
  j.field("a", 1).field("b", "x");
  j.key("list").begin_array().value(1).value(2).begin_object().end_object().begin_array().end_array().end_array();
  j.key("nested").begin_object().key("deep").begin_array().null().boolean(true).boolean(false).end_array();
  j.end_object();
  j.end_object();
  EXPECT_EQ(out, R"({"a":1,"b":"x","list":[1,2,{},[]],"nested":{"deep":[null,true,false]}})");
}

TEST(JsonWriter, TopLevelValuesAndEmptyContainers) {
  std::string out;
  JsonWriter(out).begin_array().end_array();
  EXPECT_EQ(out, "[]");
  out.clear();
  JsonWriter(out).value("only");
  EXPECT_EQ(out, R"("only")");
}

TEST(JsonWriter, StringsAreEscaped) {
  std::string out;
  JsonWriter j(out);
  j.begin_object().field("q\"k", std::string("line\nbreak \"quoted\" back\\slash \x01 tab\t")).end_object();
  EXPECT_EQ(out, "{\"q\\\"k\":\"line\\nbreak \\\"quoted\\\" back\\\\slash \\u0001 tab\\t\"}");
}

TEST(JsonWriter, IntegersOfEveryWidth) {
  std::string out;
  JsonWriter j(out);
  j.begin_array();
  j.value(int16_t{-5}).value(uint32_t{4000000000u}).value(std::numeric_limits<uint64_t>::max());
  j.value(std::numeric_limits<int64_t>::min());
  j.end_array();
  EXPECT_EQ(out, "[-5,4000000000,18446744073709551615,-9223372036854775808]");
}

TEST(JsonWriter, FixedDecimalsAndNonFiniteAsNull) {
  std::string out;
  JsonWriter j(out);
  j.begin_array().fixed(1.5, 3).fixed(0.0004, 3).fixed(-2.25, 1).fixed(1.0 / 0.0, 3).end_array();
  EXPECT_EQ(out, "[1.500,0.000,-2.2,null]");
}

TEST(JsonWriter, OptionalAndEmptyAsNull) {
  std::string out;
  JsonWriter j(out);
  j.begin_object();
  j.key("rows").value_or_null(std::optional<uint64_t>{});
  j.key("n").value_or_null(std::optional<uint64_t>{7});
  j.key("tag").string_or_null("");
  j.key("state").string_or_null("42P01");
  j.end_object();
  EXPECT_EQ(out, R"({"rows":null,"n":7,"tag":null,"state":"42P01"})");
}

TEST(JsonWriter, StringByAndRawByWriteInPlace) {
  std::string out;
  JsonWriter j(out);
  j.begin_array();
  j.string_by([](std::string& o) { o += "2026-11-28T03:00:00Z"; });
  j.raw_by([](std::string& o) { o += "12.345"; });
  j.raw("{\"pre\":true}");
  j.end_array();
  EXPECT_EQ(out, R"(["2026-11-28T03:00:00Z",12.345,{"pre":true}])");
}

}  // namespace
}  // namespace pgwire
