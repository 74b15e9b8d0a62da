#pragma once

#include <string_view>

// Fast recognisers for the common case of address text that is already
// canonical, so that Canonicalise and Validate can skip inet_pton/inet_ntop
// round trips on every load and write. Internal to the model module.
namespace openimds::model {

// True iff `text` is a dotted-quad IPv4 address in canonical form (four
// decimal octets 0..255, no leading zeros). Then common::IpAddress::Parse(text)
// succeeds, is_v4(), and its ToString() == text. False says nothing: the
// caller takes the general path.
bool IsCanonicalIpv4(std::string_view text);

// True iff `text` is "<canonical IPv4>/<n>" with n in 0..32 spelled without
// leading zeros and the host bits zero. Then common::Cidr::Parse(text)
// succeeds, is v4, and its ToString() == text. False says nothing.
bool IsCanonicalIpv4Cidr(std::string_view text);

}  // namespace openimds::model
