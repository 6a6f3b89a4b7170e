// CRC-32 (IEEE 802.3, as zlib): docs/capture-format.md section 2. Every
// capture record is checksummed, so reading a capture runs this over every
// byte of it. Two implementations give the same values:
//   - slicing by 8, portable: table k advances the CRC of a byte followed by
//     k zero bytes, so eight table lookups consume eight bytes at once;
//   - folding with carry-less multiplication (PCLMULQDQ, and SSSE3 byte
//     shuffles), chosen at run time when the CPU has both, after Intel's
//     "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
//     Instruction" (Gopal et al., 2009).
#include <array>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "pgwire/capture.hpp"

namespace pgwire {
namespace {

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (size_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}

constexpr CrcTables kCrcTables = make_crc_tables();

inline uint32_t load_le32(const std::byte* p) {
  return std::to_integer<uint32_t>(p[0]) | (std::to_integer<uint32_t>(p[1]) << 8) |
         (std::to_integer<uint32_t>(p[2]) << 16) | (std::to_integer<uint32_t>(p[3]) << 24);
}

// Eight bytes, given as two little-endian words, into the CRC register c.
inline uint32_t slice8(uint32_t c, uint32_t lo, uint32_t hi) {
  const auto& t = kCrcTables;
  lo ^= c;
  return t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
         t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
}

// Advances the CRC register (the complemented CRC) over n bytes.
uint32_t register_tables(uint32_t c, const std::byte* p, size_t n) {
  const auto& t = kCrcTables;
  for (; n >= 8; p += 8, n -= 8) c = slice8(c, load_le32(p), load_le32(p + 4));
  if (n >= 4) {  // the last 4 to 7 bytes: tables 3..0 consume four at once
    c ^= load_le32(p);
    c = t[3][c & 0xff] ^ t[2][(c >> 8) & 0xff] ^ t[1][(c >> 16) & 0xff] ^ t[0][c >> 24];
    p += 4;
    n -= 4;
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ std::to_integer<uint32_t>(*p)) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)

// The math, in the bit-reflected order the CRC uses. Loaded little-endian, bit
// k of a 128-bit register is stream bit k, the coefficient of x^(127-k) of
// the block's polynomial; of a 64-bit half, bit i is that of x^(63-i). The
// carry-less product of two such 64-bit halves A and B, read as 128 bits the
// same way, is x*A*B (bit i+j of the product stands for x^(126-i-j)).
//
// The register after a message M is M*x^32 mod P, so M can be replaced by
// anything congruent to it mod P. Folding a 128-bit block X = H*x^64 + L over
// the next 128 bits of the message replaces X*x^128 by
// H*(x^191 mod P)*x + L*(x^127 mod P)*x: two multiplications whose products
// (degree < 96) fit in one block, xored into the next block. Four blocks at
// a time fold over 512 bits the same way, with x^575 and x^511. The last
// block goes down to 64 bits with x^63 twice, and the table step of slicing
// by 8 turns those 8 bytes into the register.

// x^n mod P(x), P = x^32 + 0x04C11DB7, as a 32-bit polynomial (bit d = x^d).
constexpr uint32_t x_pow_mod_p(unsigned n) {
  uint64_t v = 1;
  for (unsigned i = 0; i < n; ++i) {
    v <<= 1;
    if (v & (uint64_t{1} << 32)) v ^= 0x104C11DB7ull;
  }
  return static_cast<uint32_t>(v);
}

// A polynomial of degree < 32 as a 64-bit half in the reflected order above.
constexpr uint64_t reflected_operand(uint32_t poly) {
  uint64_t r = 0;
  for (unsigned d = 0; d < 32; ++d) {
    if (poly & (uint32_t{1} << d)) r |= uint64_t{1} << (63 - d);
  }
  return r;
}

constexpr uint64_t kFold128Hi = reflected_operand(x_pow_mod_p(191));
constexpr uint64_t kFold128Lo = reflected_operand(x_pow_mod_p(127));
constexpr uint64_t kFold512Hi = reflected_operand(x_pow_mod_p(575));
constexpr uint64_t kFold512Lo = reflected_operand(x_pow_mod_p(511));
constexpr uint64_t kReduce64 = reflected_operand(x_pow_mod_p(63));

__attribute__((target("pclmul,ssse3"))) inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  const __m128i hi = _mm_clmulepi64_si128(x, k, 0x00);  // H times the constant in k's low half
  const __m128i lo = _mm_clmulepi64_si128(x, k, 0x11);  // L times the one in the high half
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

inline __m128i load128(const std::byte* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// pshufb masks, read 16 bytes from offset n (0x80 gives a zero byte):
// at n, a shift of the bytes up by 16 - n; at 32 + n, a shift down by n.
constexpr auto make_shuffles() {
  std::array<std::byte, 64> t{};
  for (size_t i = 0; i < 16; ++i) {
    t[i] = std::byte{0x80};
    t[16 + i] = std::byte(i);
    t[32 + i] = std::byte(i);
    t[48 + i] = std::byte{0x80};
  }
  return t;
}
alignas(64) constexpr std::array<std::byte, 64> kShuffleTable = make_shuffles();
const std::byte* const kShuffles = kShuffleTable.data();

// n >= 16. Advances the register c over the n bytes.
__attribute__((target("pclmul,ssse3"))) uint32_t register_clmul(uint32_t c, const std::byte* p, size_t n) {
  __m128i x = _mm_xor_si128(load128(p), _mm_cvtsi32_si128(static_cast<int>(c)));
  p += 16;
  n -= 16;
  if (n >= 48) {  // four independent lanes hide the multiplier's latency
    __m128i x1 = load128(p), x2 = load128(p + 16), x3 = load128(p + 32);
    p += 48;
    n -= 48;
    const __m128i k512 = _mm_set_epi64x(static_cast<long long>(kFold512Lo), static_cast<long long>(kFold512Hi));
    for (; n >= 64; p += 64, n -= 64) {
      x = fold(x, k512, load128(p));
      x1 = fold(x1, k512, load128(p + 16));
      x2 = fold(x2, k512, load128(p + 32));
      x3 = fold(x3, k512, load128(p + 48));
    }
    const __m128i k128 = _mm_set_epi64x(static_cast<long long>(kFold128Lo), static_cast<long long>(kFold128Hi));
    x = fold(fold(fold(x, k128, x1), k128, x2), k128, x3);
  }
  const __m128i k128 = _mm_set_epi64x(static_cast<long long>(kFold128Lo), static_cast<long long>(kFold128Hi));
  for (; n >= 16; p += 16, n -= 16) x = fold(x, k128, load128(p));
  if (n > 0) {
    // The last n < 16 bytes: x followed by them is x's first n bytes (after
    // 16 - n zeros, one block earlier) followed by a full block: x's other
    // 16 - n bytes, then the n bytes, which end the input's last 16 bytes.
    // One more fold combines the two; the shifts are byte shuffles.
    const __m128i to_high = load128(kShuffles + n);      // 16 - n zeros, then bytes 0..n-1
    const __m128i to_low = load128(kShuffles + 32 + n);  // bytes n..15, then n zeros
    const __m128i last = load128(p + n - 16);
    const __m128i low_part = _mm_cmplt_epi8(to_high, _mm_setzero_si128());  // the 16 - n leading bytes
    const __m128i block = _mm_or_si128(_mm_shuffle_epi8(x, to_low), _mm_andnot_si128(low_part, last));
    x = fold(_mm_shuffle_epi8(x, to_high), k128, block);
  }
  // x = H*x^64 + L: H*x^64 is congruent to a (degree < 96), whose top 32
  // coefficients (a1, in bits 32..63) fold again into b (degree < 64).
  const __m128i k64 = _mm_set_epi64x(0, static_cast<long long>(kReduce64));
  const __m128i a = _mm_clmulepi64_si128(x, k64, 0x00);
  const __m128i b = _mm_clmulepi64_si128(a, k64, 0x00);
  const __m128i y = _mm_xor_si128(_mm_xor_si128(x, a), b);  // the high 64 bits are L + a0 + b
  const auto y64 = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(y, y)));
  return slice8(0, static_cast<uint32_t>(y64), static_cast<uint32_t>(y64 >> 32));
}

bool have_clmul() {
  __builtin_cpu_init();  // we may run before the constructor that would call it
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3");
}

// A CRC computed during static initialisation, before this is set, takes the
// portable path: slower, same value.
const bool kHaveClmul = have_clmul();

#endif

}  // namespace

uint32_t crc32_ieee_portable(Bytes data, uint32_t crc) { return ~register_tables(~crc, data.data(), data.size()); }

uint32_t crc32_ieee(Bytes data, uint32_t crc) {
#if defined(__x86_64__)
  if (kHaveClmul && data.size() >= 16) return ~register_clmul(~crc, data.data(), data.size());
#endif
  return crc32_ieee_portable(data, crc);
}

}  // namespace pgwire
