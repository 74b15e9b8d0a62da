#include "model/base64.h"

#include <array>
#include <cstdint>

namespace openimds::model {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Sextet value of each byte; kPad for '=', kSpace for skipped whitespace,
// kBad for everything else.
constexpr int8_t kBad = -1;
constexpr int8_t kPad = -2;
constexpr int8_t kSpace = -3;

constexpr std::array<int8_t, 256> MakeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  t['='] = kPad;
  t[' '] = t['\n'] = t['\r'] = t['\t'] = kSpace;
  return t;
}
constexpr std::array<int8_t, 256> kTable = MakeTable();

}  // namespace

bool Base64DecodeTo(std::string_view in, std::string& out) {
  // Same bound as common::Base64Decode reserves; the output never exceeds it.
  out.resize(in.size() / 4 * 3 + 3);
  char* o = out.data();
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const auto* const end = p + in.size();

  // Fast path: whole quanta of four alphabet characters. A quantum boundary
  // leaves the general loop's state as it starts below (no pending bits, a
  // count divisible by four, no padding seen), so switching is exact.
  while (end - p >= 4) {
    const int a = kTable[p[0]], b = kTable[p[1]], c = kTable[p[2]], d = kTable[p[3]];
    if ((a | b | c | d) < 0) break;
    const uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>(v >> 8);
    o[2] = static_cast<char>(v);
    o += 3;
    p += 4;
  }

  // General path: the state machine of common::Base64Decode, verbatim.
  uint32_t acc = 0;
  int bits = 0, count = 0, pads = 0;
  for (; p < end; ++p) {
    const int8_t v = kTable[*p];
    if (v == kSpace) continue;
    if (v == kPad) {
      ++pads;
      ++count;
      continue;
    }
    if (pads > 0) return false;  // data after padding
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    ++count;
    if (bits >= 8) {
      bits -= 8;
      *o++ = static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (count % 4 != 0 || pads > 2) return false;
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  out.resize(static_cast<size_t>(o - out.data()));
  return true;
}

void AppendBase64(std::string_view in, std::string& out) {
  const size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* o = out.data() + start;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = kAlphabet[v & 63];
    o += 4;
  }
  const size_t rest = in.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t(p[i]) << 16;
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = '=';
    o[3] = '=';
  } else if (rest == 2) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8);
    o[0] = kAlphabet[(v >> 18) & 63];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = '=';
  }
}

}  // namespace openimds::model
