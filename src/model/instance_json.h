#pragma once

#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/result.h"
#include "model/instance.h"

namespace openimds::model {

// JSON mapping of Instance (the admin API's wire format and the store's
// on-disk format). The schema, field by field, is docs/instance.md.
//
// FromJson is strict: an unknown field, a wrong type or an invalid value is
// InvalidArgument whose message starts with the JSON pointer of the offender,
// e.g. "/nics/0/mac: not a MAC address". It also runs Validate().
common::Result<Instance> FromJson(const boost::json::value& json);
// Parses text first; a syntax error is InvalidArgument "invalid JSON: ... at offset N".
common::Result<Instance> FromJsonText(std::string_view text);

// Inverse of FromJson: FromJson(ToJson(x)) == x for any valid x. Empty optional
// fields are omitted; user_data is base64.
boost::json::value ToJson(const Instance& instance);
std::string ToJsonText(const Instance& instance);

// Semantic checks beyond types (id and network charset, MAC and address syntax,
// CIDRs, hop limit 1..64, user-data size, unique MACs and device numbers,
// tag keys EC2 can serve when tags are enabled). The message names the JSON
// pointer of the offender.
common::Status Validate(const Instance& instance);

// Canonical ordering: NICs by device_number. Applied by FromJson.
void Normalize(Instance& instance);

// Every address the instance answers from in its network (private IPv4s and
// IPv6s of all NICs), canonical text. Used for the (network, address) index.
std::vector<std::string> CallerAddresses(const Instance& instance);

// Limits, with the reason for each.
// EC2 caps raw user-data at 16 KiB; OpenStack at 64 KiB. We take the larger so
// an OpenStack image is not refused, and EC2 images never send more.
inline constexpr size_t kMaxUserDataBytes = 64 * 1024;

}  // namespace openimds::model
