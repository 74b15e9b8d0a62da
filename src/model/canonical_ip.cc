#include "model/canonical_ip.h"

#include <cstdint>

namespace openimds::model {
namespace {

// Parses "a.b.c.d" in canonical spelling into `out` (host order).
bool ParseCanonicalIpv4(std::string_view s, uint32_t& out) {
  uint32_t address = 0;
  size_t i = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    const size_t start = i;
    uint32_t value = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
      value = value * 10 + static_cast<uint32_t>(s[i] - '0');
      ++i;
    }
    const size_t digits = i - start;
    if (digits == 0 || value > 255) return false;
    if (digits > 1 && s[start] == '0') return false;  // leading zero
    address = (address << 8) | value;
  }
  if (i != s.size()) return false;
  out = address;
  return true;
}

}  // namespace

bool IsCanonicalIpv4(std::string_view text) {
  uint32_t address;
  return ParseCanonicalIpv4(text, address);
}

bool IsCanonicalIpv4Cidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  uint32_t address;
  if (!ParseCanonicalIpv4(text.substr(0, slash), address)) return false;
  const std::string_view len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 2) return false;
  if (len_text.size() > 1 && len_text[0] == '0') return false;  // leading zero
  int len = 0;
  for (char c : len_text) {
    if (c < '0' || c > '9') return false;
    len = len * 10 + (c - '0');
  }
  if (len > 32) return false;
  const uint32_t host_mask = len == 32 ? 0 : (0xffffffffu >> len);
  return (address & host_mask) == 0;
}

}  // namespace openimds::model
