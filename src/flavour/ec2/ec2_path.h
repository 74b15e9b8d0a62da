#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

namespace openimds::flavour::ec2 {

// Deepest path the tree serves is 8 segments
// (latest/meta-data/network/interfaces/macs/<mac>/ipv4-associations/<ip>);
// anything much deeper is refused before any lookup.
inline constexpr size_t kMaxSegments = 16;

// A request path split into segments. Views point into the request.
struct Ec2Path {
  std::array<std::string_view, kMaxSegments> segments_storage;
  size_t size = 0;
  // The path ended in '/' (and is not just "/").
  bool trailing_slash = false;

  std::span<const std::string_view> segments() const { return {segments_storage.data(), size}; }
  std::string_view operator[](size_t i) const { return segments_storage[i]; }
};

// Splits `path` into segments; empty segments vanish, so "/latest//meta-data"
// is "/latest/meta-data" (clients send double slashes, clients.md §0.4).
// Returns false when the path must be answered 404 whatever the tree holds:
// longer than `max_bytes`, deeper than kMaxSegments, not starting with '/',
// containing '%' (EC2 keys have no escapes; decoding would reopen traversal
// through %2e%2e or %2f), or with a "." or ".." segment (traversal is refused,
// never normalised). Allocation-free.
bool ParseEc2Path(std::string_view path, size_t max_bytes, Ec2Path& out);

}  // namespace openimds::flavour::ec2
