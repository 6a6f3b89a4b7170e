// Malformed input: every case is a whole stream from the first byte of one
// direction of a connection, the Errc it must fail with and the stream offset
// the error must point at. Each stream is also a file in corpus/fuzz/seeds/
// (fe_* frontend, be_* backend) so the fuzz harnesses start from them; the
// test checks that the file holds exactly these bytes.
//
// Offsets: framing errors point at the field that is wrong (the length field
// of a typed message is at frame offset + 1, the code of a startup packet at
// + 4); decoding errors point at the byte where the field that failed starts,
// except count errors found by Reader::check_count, which point just after
// the count (where the elements would start), and trailing bytes, which point
// at the first byte left over.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "pgwire/bytes.hpp"
#include "pgwire/framer.hpp"
#include "pgwire/messages.hpp"
#include "pgwire/protocol.hpp"

namespace pgwire {
namespace {

namespace fs = std::filesystem;

constexpr Direction kFe = Direction::kFrontend;
constexpr Direction kBe = Direction::kBackend;
constexpr PasswordKind kPw = PasswordKind::kPassword;
constexpr PasswordKind kSaslInit = PasswordKind::kSaslInitial;

// The shortest StartupMessage (protocol 3.0, no parameters), 9 bytes: frontend
// typed messages follow it, so their type byte is at 9, length at 10, body at 14.
#define S "00000009 00030000 00 "
// 257 bytes: one more than the largest cancel key.
#define KEY257                                                       \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "abababababababababababababababababababababababababababababababab" \
  "ab"

struct Malformed {
  const char* seed;  // file name under corpus/fuzz/seeds/
  Direction dir;
  const char* hex;           // the stream
  std::optional<Errc> code;  // nullopt: no error, the framer is waiting for more bytes
  uint64_t offset;           // where the error points; with no error, the bytes consumed
  PasswordKind password = kPw;
  bool after_ssl_request = false;  // backend: the client sent SSLRequest first
};

// clang-format off
const Malformed kCases[] = {
  // ---- frontend startup phase
  {"fe_startup_length_7.bin", kFe, "00000007 00030000", Errc::kBadLength, 0},
  {"fe_startup_length_negative.bin", kFe, "ffffffff 00030000 00", Errc::kBadLength, 0},
  {"fe_startup_length_10001.bin", kFe, "00002711 00030000", Errc::kTooLong, 0},
  {"fe_startup_protocol_2_0.bin", kFe, "00000009 00020000 00", Errc::kUnsupported, 4},
  {"fe_startup_unknown_request_code.bin", kFe, "00000008 04d21631", Errc::kUnknownType, 4},
  {"fe_sslrequest_length_12.bin", kFe, "0000000c 04d2162f 00000000", Errc::kBadLength, 0},
  {"fe_startup_value_missing_terminator.bin", kFe, "00000010 00030000 7573657200 616c69", Errc::kMissingTerminator, 13},
  {"fe_startup_missing_final_terminator.bin", kFe, "00000013 00030000 7573657200 616c69636500", Errc::kMissingTerminator, 19},
  {"fe_startup_truncated_stream.bin", kFe, "00000038 00030000 75736572", std::nullopt, 12},
  {"fe_startup_twice.bin", kFe, S S, Errc::kUnknownType, 9},
  {"fe_cancel_key_3_bytes.bin", kFe, "0000000f 04d2162e 00003039 1a2b3c", Errc::kBadLength, 12},
  {"fe_cancel_key_257_bytes.bin", kFe, "0000010d 04d2162e 00003039" KEY257, Errc::kBadLength, 12},
  {"fe_cancel_no_process_id.bin", kFe, "00000008 04d2162e", Errc::kTruncated, 8},
  {"fe_data_after_cancel_request.bin", kFe, "00000010 04d2162e 00003039 1a2b3c4d 53 00000004", Errc::kUnexpected, 16},
  {"fe_data_before_ssl_answer.bin", kFe, "00000008 04d2162f" S, Errc::kUnexpected, 8},
  // ---- frontend framing
  {"fe_unknown_type.bin", kFe, S "5a 00000004", Errc::kUnknownType, 9},
  {"fe_length_3.bin", kFe, S "51 00000003", Errc::kBadLength, 10},
  {"fe_length_negative.bin", kFe, S "51 ffffffff", Errc::kBadLength, 10},
  {"fe_sync_length_10001.bin", kFe, S "53 00002711", Errc::kTooLong, 10},
  {"fe_query_length_0x40000000.bin", kFe, S "51 40000000", Errc::kTooLong, 10},
  // ---- frontend message bodies
  {"fe_sync_trailing_byte.bin", kFe, S "53 00000005 00", Errc::kTrailingBytes, 14},
  {"fe_query_missing_terminator.bin", kFe, S "51 00000008 53454c45", Errc::kMissingTerminator, 14},
  {"fe_query_trailing_bytes.bin", kFe, S "51 0000000b 53454c454300 78", Errc::kTrailingBytes, 20},
  {"fe_parse_count_too_large.bin", kFe, S "50 00000008 00 00 03e8", Errc::kBadCount, 18},
  {"fe_parse_count_negative.bin", kFe, S "50 00000008 00 00 ffff", Errc::kBadCount, 18},
  {"fe_bind_param_count_1000.bin", kFe, S "42 00000011 00 00 0000 03e8 00000001 78 0000", Errc::kBadCount, 20},
  {"fe_bind_value_length_minus_2.bin", kFe, S "42 00000010 00 00 0000 0001 fffffffe 0000", Errc::kBadLength, 20},
  {"fe_bind_value_truncated.bin", kFe, S "42 00000012 00 00 0000 0001 0000000a 3432 0000", Errc::kTruncated, 24},
  {"fe_bind_bad_format_code.bin", kFe, S "42 0000000e 00 00 0001 0002 0000 0000", Errc::kBadValue, 18},
  {"fe_bind_format_count_mismatch.bin", kFe, S "42 0000001c 00 00 0002 0000 0000 0003 ffffffff ffffffff ffffffff 0000", Errc::kBadCount, 22},
  {"fe_bind_missing_terminator.bin", kFe, S "42 00000006 7031", Errc::kMissingTerminator, 14},
  {"fe_bind_bad_result_format.bin", kFe, S "42 0000000e 00 00 0000 0000 0001 0005", Errc::kBadValue, 22},
  {"fe_describe_bad_target.bin", kFe, S "44 00000006 58 00", Errc::kBadValue, 14},
  {"fe_close_bad_target.bin", kFe, S "43 00000006 73 00", Errc::kBadValue, 14},
  {"fe_describe_missing_name.bin", kFe, S "44 00000005 53", Errc::kMissingTerminator, 15},
  {"fe_execute_truncated_max_rows.bin", kFe, S "45 00000007 00 0000", Errc::kTruncated, 15},
  {"fe_copy_fail_missing_terminator.bin", kFe, S "66 00000007 616263", Errc::kMissingTerminator, 14},
  {"fe_function_call_bad_result_format.bin", kFe, S "46 0000000e 00000366 0000 0000 0002", Errc::kBadValue, 22},
  {"fe_function_call_arg_count_too_large.bin", kFe, S "46 0000000e 00000366 0000 7fff 0000", Errc::kBadCount, 22},
  {"fe_function_call_arg_length_minus_2.bin", kFe, S "46 00000012 00000366 0000 0001 fffffffe 0000", Errc::kBadLength, 22},
  {"fe_function_call_format_count_mismatch.bin", kFe, S "46 0000001e 00000366 0002 0000 0000 0003 ffffffff ffffffff ffffffff 0000", Errc::kBadCount, 24},
  {"fe_sasl_initial_length_minus_2.bin", kFe, S "70 00000016 534352414d2d5348412d32353600 fffffffe", Errc::kBadLength, 28, kSaslInit},
  {"fe_sasl_initial_data_truncated.bin", kFe, S "70 0000001a 534352414d2d5348412d32353600 00000010 6e2c2c6e", Errc::kTruncated, 32, kSaslInit},
  {"fe_password_missing_terminator.bin", kFe, S "70 0000000a 736563726574", Errc::kMissingTerminator, 14},
  {"fe_password_trailing_bytes.bin", kFe, S "70 0000000c 736563726574 00 00", Errc::kTrailingBytes, 21},
  // ---- backend framing
  {"be_unknown_type.bin", kBe, "78 00000004", Errc::kUnknownType, 0},
  {"be_length_3.bin", kBe, "5a 00000003", Errc::kBadLength, 1},
  {"be_length_negative.bin", kBe, "44 80000000", Errc::kBadLength, 1},
  {"be_length_0x40000000.bin", kBe, "44 40000000", Errc::kTooLong, 1},
  {"be_bad_ssl_answer.bin", kBe, "58", Errc::kBadValue, 0, kPw, true},
  {"be_data_row_truncated_stream.bin", kBe, "44 0000000f 0002", std::nullopt, 7},
  // ---- backend message bodies
  {"be_row_description_count_too_large.bin", kBe, "54 00000008 0064 0000", Errc::kBadCount, 7},
  {"be_row_description_count_negative.bin", kBe, "54 00000006 ffff", Errc::kBadCount, 7},
  {"be_row_description_truncated_field.bin", kBe, "54 00000026 0001 6162636465666768696a6b6c6d6e6f70717273747500 00004000 0001 00000017", Errc::kTruncated, 39},
  {"be_row_description_bad_format.bin", kBe, "54 0000001a 0001 6100 00000000 0000 00000017 0004 ffffffff 0002", Errc::kBadValue, 25},
  {"be_data_row_count_too_large.bin", kBe, "44 0000000b 0005 00000001 31", Errc::kBadCount, 7},
  {"be_data_row_value_length_minus_5.bin", kBe, "44 0000000a 0001 fffffffb", Errc::kBadLength, 7},
  {"be_data_row_value_truncated.bin", kBe, "44 0000000d 0001 00000064 616263", Errc::kTruncated, 11},
  {"be_data_row_trailing_bytes.bin", kBe, "44 0000000c 0001 00000001 31 ff", Errc::kTrailingBytes, 12},
  {"be_parameter_description_count_too_large.bin", kBe, "74 0000000a 0003 00000017", Errc::kBadCount, 7},
  {"be_backend_key_data_key_3_bytes.bin", kBe, "4b 0000000b 00003039 1a2b3c", Errc::kBadLength, 9},
  {"be_backend_key_data_key_257_bytes.bin", kBe, "4b 00000109 00003039" KEY257, Errc::kBadLength, 9},
  {"be_backend_key_data_no_key.bin", kBe, "4b 00000008 00003039", Errc::kBadLength, 9},
  {"be_auth_unknown_code.bin", kBe, "52 00000008 00000004", Errc::kBadValue, 5},
  {"be_auth_md5_short_salt.bin", kBe, "52 0000000b 00000005 9f3a17", Errc::kTruncated, 9},
  {"be_auth_ok_trailing_bytes.bin", kBe, "52 0000000c 00000000 00000000", Errc::kTrailingBytes, 9},
  {"be_auth_sasl_missing_list_terminator.bin", kBe, "52 00000016 0000000a 534352414d2d5348412d32353600", Errc::kMissingTerminator, 23},
  {"be_auth_truncated_code.bin", kBe, "52 00000006 0000", Errc::kTruncated, 5},
  {"be_ready_for_query_bad_status.bin", kBe, "5a 00000005 58", Errc::kBadValue, 5},
  {"be_ready_for_query_trailing_bytes.bin", kBe, "5a 00000006 49 49", Errc::kTrailingBytes, 6},
  {"be_copy_in_bad_format.bin", kBe, "47 00000007 02 0000", Errc::kBadValue, 5},
  {"be_copy_out_bad_column_format.bin", kBe, "48 00000009 00 0001 0002", Errc::kBadValue, 8},
  {"be_copy_text_with_binary_column.bin", kBe, "47 0000000b 00 0002 0000 0001", Errc::kBadValue, 10},
  {"be_copy_in_column_count_too_large.bin", kBe, "47 00000009 00 0064 0000", Errc::kBadCount, 8},
  {"be_error_response_value_missing_terminator.bin", kBe, "45 0000000a 53 4552524f52", Errc::kMissingTerminator, 6},
  {"be_error_response_missing_final_nul.bin", kBe, "45 0000000b 53 4552524f5200", Errc::kTruncated, 12},
  {"be_error_response_trailing_bytes.bin", kBe, "45 0000000d 53 4552524f5200 00 ff", Errc::kTrailingBytes, 13},
  {"be_negotiate_count_too_large.bin", kBe, "76 0000000e 00000002 0000000a 7800", Errc::kBadCount, 13},
  {"be_negotiate_count_negative.bin", kBe, "76 0000000c 00000002 ffffffff", Errc::kBadCount, 13},
  {"be_notification_missing_payload.bin", kBe, "41 0000000d 00001092 6a6f627300", Errc::kMissingTerminator, 14},
  {"be_function_call_response_truncated.bin", kBe, "56 0000000a 0000000a 0000", Errc::kTruncated, 9},
  {"be_function_call_response_length_minus_3.bin", kBe, "56 00000008 fffffffd", Errc::kBadLength, 5},
  {"be_parse_complete_trailing_bytes.bin", kBe, "31 00000005 00", Errc::kTrailingBytes, 5},
  {"be_command_complete_missing_terminator.bin", kBe, "43 0000000c 53454c4543542031", Errc::kMissingTerminator, 5},
  {"be_parameter_status_missing_value.bin", kBe, "53 00000013 7365727665725f76657273696f6e00", Errc::kMissingTerminator, 20},
};
// clang-format on

#undef S
#undef KEY257

struct Outcome {
  std::optional<Error> error;
  uint64_t consumed = 0;
  int frames = 0;
};

// Frames and decodes the stream in chunks of `chunk` bytes, stopping at the first error.
Outcome run(const Malformed& c, const std::vector<std::byte>& stream, size_t chunk) {
  ConnectionFramer conn;
  if (c.after_ssl_request) {
    auto ssl = from_hex("00000008 04d2162f").value();
    Bytes in{ssl};
    EXPECT_TRUE(conn.next(kFe, in).has_frame());
  }
  Outcome out;
  for (size_t pos = 0; pos < stream.size() && !out.error; pos += chunk) {
    Bytes in{stream.data() + pos, std::min(chunk, stream.size() - pos)};
    for (;;) {
      FrameResult r = conn.next(c.dir, in);
      if (r.failed()) {
        out.error = r.error();
        break;
      }
      if (r.needs_more()) break;
      ++out.frames;
      if (c.dir == kFe) {
        Result<fe::Message> m = decode_frontend(r.frame(), c.password);
        if (!m) out.error = m.error();
      } else {
        Result<be::Message> m = decode_backend(r.frame());
        if (!m) out.error = m.error();
      }
      if (out.error) break;
    }
  }
  out.consumed = (c.dir == kFe ? conn.frontend() : conn.backend()).offset();
  return out;
}

std::optional<std::vector<std::byte>> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  std::transform(raw.begin(), raw.end(), out.begin(),
                 [](char ch) { return std::byte(static_cast<unsigned char>(ch)); });
  return out;
}

TEST(Malformed, EachCaseFailsWithItsCodeAndOffset) {
  for (const Malformed& c : kCases) {
    SCOPED_TRACE(c.seed);
    auto stream = from_hex(c.hex);
    ASSERT_TRUE(stream.has_value()) << "bad hex in the table";
    // The whole stream at once, then a byte at a time: the same outcome.
    for (size_t chunk : {stream->size(), size_t{1}}) {
      Outcome o = run(c, *stream, chunk);
      if (!c.code) {
        EXPECT_FALSE(o.error.has_value()) << o.error->describe();
        EXPECT_EQ(o.frames, 0);
        EXPECT_EQ(o.consumed, c.offset);
        continue;
      }
      ASSERT_TRUE(o.error.has_value()) << "accepted (chunk " << chunk << ")";
      EXPECT_EQ(errc_name(o.error->code), std::string(errc_name(*c.code)))
          << o.error->describe() << " (chunk " << chunk << ")";
      EXPECT_EQ(o.error->offset, c.offset) << o.error->describe() << " (chunk " << chunk << ")";
      EXPECT_FALSE(o.error->message.empty());
    }
  }
}

TEST(Malformed, SeedFilesHoldTheStreams) {
  const fs::path dir = fs::path(PGWIRE_CORPUS_DIR) / "fuzz" / "seeds";
  for (const Malformed& c : kCases) {
    SCOPED_TRACE(c.seed);
    auto file = read_file(dir / c.seed);
    ASSERT_TRUE(file.has_value()) << "missing seed file";
    EXPECT_EQ(to_hex(*file), to_hex(from_hex(c.hex).value()));
  }
}

// After an error the framer stays failed and keeps reporting the same error.
TEST(Malformed, FramerErrorIsSticky) {
  Framer f(kFe);
  auto stream = from_hex("00000009 00030000 00 51 ffffffff 53 00000004").value();
  Bytes in{stream};
  ASSERT_TRUE(f.next(in).has_frame());
  FrameResult r1 = f.next(in);
  ASSERT_TRUE(r1.failed());
  EXPECT_EQ(r1.error().code, Errc::kBadLength);
  FrameResult r2 = f.next(in);
  ASSERT_TRUE(r2.failed());
  EXPECT_EQ(r2.error().offset, r1.error().offset);
  EXPECT_TRUE(f.failed());
}

// A frame that arrives only in pieces cannot be decoded, and says so.
TEST(Malformed, PiecesAreNotDecoded) {
  FramerOptions opts;
  opts.max_buffered = 0;  // raised to 10000 by the framer: use a larger body
  Framer f(kBe, opts);
  std::vector<std::byte> stream = from_hex("64 00004e24").value();  // CopyData, 20000-byte body...
  stream.resize(5 + 100, std::byte{'x'});                           // ...of which 100 bytes arrived
  Bytes in{stream};
  FrameResult r = f.next(in);
  ASSERT_TRUE(r.has_frame());
  ASSERT_FALSE(r.frame().whole());
  Result<be::Message> m = decode_backend(r.frame());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, Errc::kUnsupported);
}

// Decoders never read past the body they are given: every prefix of every
// malformed stream, decoded as a body of every message type, fails cleanly or
// decodes (run under -DPGWIRE_SANITIZE=ON to catch an overread).
TEST(Malformed, EveryPrefixAsEveryBodyIsHandled) {
  for (const Malformed& c : kCases) {
    auto stream = from_hex(c.hex).value();
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      std::vector<std::byte> body(stream.begin(), stream.begin() + static_cast<ptrdiff_t>(cut));
      Frame f;
      f.kind = FrameKind::kTyped;
      f.length = static_cast<uint32_t>(cut + 4);
      f.body = body;
      for (int t = 0; t < 256; ++t) {
        f.type = static_cast<uint8_t>(t);
        if (c.dir == kFe) {
          for (PasswordKind k :
               {PasswordKind::kPassword, PasswordKind::kSaslInitial, PasswordKind::kSasl, PasswordKind::kGss}) {
            Result<fe::Message> m = decode_frontend(f, k);
            if (!m) {
              EXPECT_LE(m.error().offset, f.offset + 5 + cut);
            }
          }
        } else {
          Result<be::Message> m = decode_backend(f);
          if (!m) {
            EXPECT_LE(m.error().offset, f.offset + 5 + cut);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace pgwire
