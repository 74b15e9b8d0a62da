#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "common/ip_address.h"
#include "model/instance.h"

namespace openimds::model {

// JSON mapping of Instance (the admin API's wire format and the store's
// on-disk format). The schema, field by field, is docs/instance.md.
//
// FromJson is strict: an unknown field, a wrong type or an invalid value is
// InvalidArgument whose message starts with the JSON pointer of the offender,
// e.g. "/nics/0/mac: not a MAC address". Only "id" is required; an absent
// "network" means "default". It canonicalises what has one obvious canonical
// form (upper-case MACs, address and CIDR spellings), runs the checks of
// Validate() with pointers into the input as given, then Normalize()s, so the
// result passes Validate(). A key repeated inside one JSON object: the last
// one wins (that is how Boost.JSON parses it).
common::Result<Instance> FromJson(const boost::json::value& json);

// How FromJson treats input whose meaning depends on when it is parsed.
struct ParseOptions {
  // Event times (docs/instance.md "Platform events") may be given as a
  // delay, {"in_seconds": N}, which becomes now + N: `now` when set, else the
  // system clock at the moment of parsing. The record that comes out holds
  // only absolute times, so writing it and reading it back changes nothing.
  std::optional<TimePoint> now;
};
common::Result<Instance> FromJson(const boost::json::value& json, const ParseOptions& options);

// Parses text first; a syntax error is InvalidArgument "invalid JSON: ... at offset N".
common::Result<Instance> FromJsonText(std::string_view text);

// Inverse of FromJson: FromJson(ToJson(x)) == x for any valid x. Empty strings,
// empty arrays and maps, absent optionals and unset (epoch) times are omitted;
// integers, "architecture" and "metadata_options" are always written; a present
// but empty user_data is written as "". user_data is base64.
boost::json::value ToJson(const Instance& instance);
std::string ToJsonText(const Instance& instance);

// Semantic checks beyond types (id and network charset, MAC and address syntax,
// CIDRs, hop limit 1..64, unique MACs and device numbers, tag keys EC2 can
// serve when tags are enabled, valid UTF-8 everywhere and no control
// characters in names and identifiers). The full list is in docs/instance.md.
// Sizes and counts are not checked here: they are limits
// (model/record_limits.h, CheckLimits), which the admin API applies to what
// it accepts and the store does not, so a stored record always loads. It also rejects what is valid but not canonical (an
// address not in IpAddress::ToString form, an upper-case MAC, NICs out of
// device_number order, a time with a fraction of a second): Normalize() fixes
// those. InvalidArgument whose message starts with the JSON pointer of the
// offender, e.g. "/metadata_options/hop_limit: 0 not in 1..64".
common::Status Validate(const Instance& instance);

// Puts `instance` in canonical form, changing nothing else: NICs (stably)
// ordered by device_number, MACs lower case, every address and CIDR that
// parses in its canonical text, times truncated to whole seconds (the wire
// format's precision). Applied by FromJson; writers that build an Instance in
// code (and the store, before it writes) call it before Validate().
void Normalize(Instance& instance);

// Every address the instance answers from in its network, canonical text,
// each once: private IPv4s and IPv6s of all NICs, then the addresses of
// network_config's static networks. Used for the store's unique (network,
// address) index and the catalog's lookup index.
std::vector<std::string> CallerAddresses(const Instance& instance);

// Where a record part's own fields name caller addresses (RecordPart::
// caller_addresses), in the order of RecordParts(): calls fn(context, ip).
void ForEachPartCallerAddress(const Instance& instance, void* context,
                              void (*fn)(void* context, const common::IpAddress& ip));

// The same addresses as CallerAddresses, parsed, without allocating: calls
// fn(const common::IpAddress&) for each, in the same order. An address listed
// twice is passed twice, and one that does not parse is skipped (Validate
// refuses both). For indexes rebuilt on every load and change.
template <typename F>
void ForEachCallerAddress(const Instance& instance, F&& fn) {
  for (const Nic& nic : instance.nics) {
    for (const auto& a : nic.private_ipv4s) {
      if (auto ip = common::IpAddress::Parse(a)) fn(*ip);
    }
    for (const auto& a : nic.ipv6s) {
      if (auto ip = common::IpAddress::Parse(a)) fn(*ip);
    }
  }
  ForEachPartCallerAddress(instance, &fn, [](void* context, const common::IpAddress& ip) {
    (*static_cast<std::remove_reference_t<F>*>(context))(ip);
  });
}

}  // namespace openimds::model
