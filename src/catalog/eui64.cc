#include "catalog/eui64.h"

#include <array>
#include <cstdint>

#include "common/encoding.h"

namespace openimds::catalog {

std::optional<common::IpAddress> Eui64LinkLocal(std::string_view mac) {
  // "xx:xx:xx:xx:xx:xx": 17 characters, one separator kind throughout.
  if (mac.size() != 17) return std::nullopt;
  const char separator = mac[2];
  if (separator != ':' && separator != '-') return std::nullopt;
  std::array<uint8_t, 6> octets{};
  for (size_t i = 0; i < 6; ++i) {
    const size_t at = i * 3;
    if (i > 0 && mac[at - 1] != separator) return std::nullopt;
    const int hi = common::HexValue(mac[at]);
    const int lo = common::HexValue(mac[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    octets[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  std::array<uint8_t, 16> bytes{};
  bytes[0] = 0xfe;
  bytes[1] = 0x80;
  bytes[8] = octets[0] ^ 0x02;  // the universal/local bit, inverted
  bytes[9] = octets[1];
  bytes[10] = octets[2];
  bytes[11] = 0xff;
  bytes[12] = 0xfe;
  bytes[13] = octets[3];
  bytes[14] = octets[4];
  bytes[15] = octets[5];
  return common::IpAddress::FromV6Bytes(bytes);
}

}  // namespace openimds::catalog
