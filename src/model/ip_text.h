#pragma once

#include <string_view>

#include "common/status.h"
#include "model/json_reader.h"
#include "model/str.h"
#include "model/str_list.h"

// IP addresses and CIDRs as the record holds them: canonical text
// (IpAddress::ToString, Cidr::ToString), checked and canonicalised the same
// way for every field that holds one. Internal to the model module.
namespace openimds::model {

enum class Family { kV4, kV6 };

// "not an IP address: \"x\"", "not an IPv4 address" / "not an IPv6
// address", or "not canonical (want ...)".
common::Status CheckAddress(const json_reader::Path& at, std::string_view text, Family family);

// A CIDR with zero host bits: "not a CIDR with zero host bits: \"x\"", "not an
// IPv4 CIDR" / "not an IPv6 CIDR", or "not canonical (want ...)".
common::Status CheckCidr(const json_reader::Path& at, std::string_view text, Family family);
common::Status CheckCidrs(const json_reader::Path& at, const StrList& list, Family family);

// Rewrites every entry that parses in its canonical text; leaves the others
// for the checks to refuse. Text that is already canonical (the usual case:
// records written by ToJsonText) is recognised without an inet_pton/inet_ntop
// round trip.
void CanonicalAddresses(StrList& list);
void CanonicalCidr(Str& cidr);
void CanonicalCidrs(StrList& list);

}  // namespace openimds::model
