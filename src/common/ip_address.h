#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace openimds::common {

// An IPv4 or IPv6 address as a value. IPv4 is stored as itself (not v4-mapped);
// a v4-mapped IPv6 address (::ffff:a.b.c.d) is normalised to IPv4 by Parse and
// FromV6Bytes, so a dual-stack socket and an IPv4 socket identify a caller alike.
class IpAddress {
 public:
  IpAddress() = default;

  // Parses dotted-quad IPv4 or RFC 4291 IPv6 text (no zone id, no brackets).
  // Returns nullopt on anything else.
  static std::optional<IpAddress> Parse(std::string_view text);
  static IpAddress FromV4(uint32_t host_order);
  static IpAddress FromV6Bytes(const std::array<uint8_t, 16>& bytes);

  bool is_v4() const { return v4_; }
  // Network-order bytes; for IPv4 only the first 4 are used.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }

  // Canonical text: dotted quad, or RFC 5952 IPv6.
  std::string ToString() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.v4_ == b.v4_ && a.bytes_ == b.bytes_;
  }
  size_t Hash() const;

 private:
  bool v4_ = true;
  std::array<uint8_t, 16> bytes_{};
};

// An address prefix such as 10.0.0.0/24 or fd00::/64.
struct Cidr {
  IpAddress address;
  int prefix_len = 0;

  // Parses "addr/len"; the host bits must be zero unless `allow_host_bits`.
  static std::optional<Cidr> Parse(std::string_view text, bool allow_host_bits = false);
  bool Contains(const IpAddress& ip) const;
  std::string ToString() const;
};

}  // namespace openimds::common
