#include "common/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace openimds::common {

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; addresses are short, so a stack copy.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, buf, ip.bytes_.data()) == 1) {
    ip.v4_ = true;
    return ip;
  }
  std::array<uint8_t, 16> b{};
  if (inet_pton(AF_INET6, buf, b.data()) == 1) return FromV6Bytes(b);
  return std::nullopt;
}

IpAddress IpAddress::FromV4(uint32_t host_order) {
  IpAddress ip;
  ip.v4_ = true;
  ip.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  ip.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  ip.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  ip.bytes_[3] = static_cast<uint8_t>(host_order);
  return ip;
}

IpAddress IpAddress::FromV6Bytes(const std::array<uint8_t, 16>& b) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  IpAddress ip;
  if (std::memcmp(b.data(), kMapped, 12) == 0) {
    ip.v4_ = true;
    std::memcpy(ip.bytes_.data(), b.data() + 12, 4);
    return ip;
  }
  ip.v4_ = false;
  ip.bytes_ = b;
  return ip;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf)) == nullptr) return {};
  return buf;
}

size_t IpAddress::Hash() const {
  // FNV-1a over the used bytes: cheap, and addresses are not attacker-chosen keys
  // that could be tuned to collide (they come from the kernel's accept()).
  size_t h = v4_ ? 0x9e3779b97f4a7c15ull : 0xcbf29ce484222325ull;
  const int n = v4_ ? 4 : 16;
  for (int i = 0; i < n; ++i) {
    h ^= bytes_[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::optional<Cidr> Cidr::Parse(std::string_view text, bool allow_host_bits) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = IpAddress::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  std::string_view len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3) return std::nullopt;
  int len = 0;
  for (char c : len_text) {
    if (c < '0' || c > '9') return std::nullopt;
    len = len * 10 + (c - '0');
  }
  const int max = ip->is_v4() ? 32 : 128;
  if (len > max) return std::nullopt;
  Cidr c{*ip, len};
  if (!allow_host_bits) {
    std::array<uint8_t, 16> masked = ip->bytes();
    for (int bit = len; bit < max; ++bit) masked[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    if (masked != ip->bytes()) return std::nullopt;
  }
  return c;
}

bool Cidr::Contains(const IpAddress& ip) const {
  if (ip.is_v4() != address.is_v4()) return false;
  const auto& a = address.bytes();
  const auto& b = ip.bytes();
  int full = prefix_len / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  int rest = prefix_len % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

std::string Cidr::ToString() const { return address.ToString() + "/" + std::to_string(prefix_len); }

}  // namespace openimds::common
