#pragma once

#include <optional>
#include <string_view>

#include "common/ip_address.h"

namespace openimds::catalog {

// The IPv6 link-local address a guest forms from its MAC with modified EUI-64
// (RFC 4291 Appendix A, RFC 4862): fe80::/64 plus the MAC with ff:fe inserted
// in the middle and the universal/local bit (0x02 of the first octet)
// flipped. 52:54:00:12:34:56 -> fe80::5054:ff:fe12:3456.
//
// This is the source address of a guest that calls fe80::a9fe:a9fe over its
// link when the kernel forms addresses by EUI-64 (addr_gen_mode 0, the
// default; stable-privacy or random addresses cannot be derived). Neutron's
// metadata agent maps such callers back to a port the same way
// (netutils.get_mac_addr_by_ipv6).
//
// `mac`: six hex octets separated by ':' or '-', either case. nullopt for
// anything else. Allocation-free; thread-safe.
std::optional<common::IpAddress> Eui64LinkLocal(std::string_view mac);

}  // namespace openimds::catalog
