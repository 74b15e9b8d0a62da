#include "model/instance_json.h"

#include "model/json_reader.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <boost/json.hpp>

#include "common/encoding.h"
#include "common/ip_address.h"
#include "common/time_format.h"
#include "model/base64.h"
#include "model/canonical_ip.h"
#include "model/json_writer.h"
#include "model/network_config_json.h"  // guest configuration fields

namespace openimds::model {
namespace {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit shared with network_config_json.cc

// EC2 fidelity fields: defined at the end of this namespace.
void CanonicaliseEc2Fields(Instance& in);
Status CheckNicEc2Fields(const Path& at, const Nic& nic);
Status ValidateEc2Fields(const Instance& in);
// Request limits ("limits"): defined after the metadata options reader.
Status ValidateLimits(const Instance& in);


// ---------------------------------------------------------------------------
// Character-level checks.

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
// Returns the number of code points, or -1. Boost.JSON refuses invalid UTF-8 on
// input, but an Instance built in code may carry anything; serialising such a
// string would write a document that no parser reads back.
// Scans eight bytes at a time for the common case: names, ids and tokens are
// printable ASCII, for which the checks below are trivial.
constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighBits = 0x8080808080808080ull;

uint64_t Load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

bool IsAscii(std::string_view s) {
  size_t i = 0;
  uint64_t any = 0;
  for (; i + 8 <= s.size(); i += 8) any |= Load8(s.data() + i);
  for (; i < s.size(); ++i) any |= static_cast<unsigned char>(s[i]);
  return (any & kHighBits) == 0;
}

// Every byte in 0x20..0x7e: valid UTF-8 and no control character.
bool IsPrintableAscii(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const uint64_t x = Load8(s.data() + i);
    // A byte below 0x20 (exact for "any byte", the classic has-less test),
    // or a byte above 0x7e (adding 1 carries it into the high bit), or a
    // byte with the high bit already set.
    const uint64_t below = (x - kOnes * 0x20) & ~x & kHighBits;
    const uint64_t above = ((x & ~kHighBits) + kOnes * 0x01) | x;
    if ((below | (above & kHighBits)) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

long Utf8Length(std::string_view s) {
  if (IsAscii(s)) return static_cast<long>(s.size());
  long n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return -1;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    i += len;
    ++n;
  }
  return n;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool AllOf(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

// A name or identifier that ends up in a metadata listing or a header: one
// line of valid UTF-8.
Status CheckText(const Path& at, std::string_view s) {
  if (IsPrintableAscii(s)) return Status::Ok();
  if (Utf8Length(s) < 0) return Err(at, "not valid UTF-8");
  if (HasControl(s)) return Err(at, "contains a control character");
  return Status::Ok();
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool IsMac(std::string_view s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2 ? s[i] != ':' : !IsHex(s[i])) return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

TimePoint TruncateToSeconds(TimePoint t) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch())));
}

bool IsSet(TimePoint t) { return t != TimePoint{}; }

// ---------------------------------------------------------------------------
// Canonical text (shared by FromJson and Normalize).

// Text that is already canonical (the usual case: records written by
// ToJsonText) is recognised without an inet_pton/inet_ntop round trip.
void CanonicalAddresses(StrList& list) {
  for (auto& a : list) {
    if (IsCanonicalIpv4(a)) continue;
    if (auto ip = common::IpAddress::Parse(a)) a = ip->ToString();
  }
}

void CanonicalCidr(Str& c) {
  if (IsCanonicalIpv4Cidr(c)) return;
  if (auto cidr = common::Cidr::Parse(c)) c = cidr->ToString();
}

void CanonicalCidrs(StrList& list) {
  for (auto& c : list) CanonicalCidr(c);
}

// Everything in Normalize() except the NIC order, which FromJson applies only
// after validating (so that messages point into the input as given).
void Canonicalise(Instance& in) {
  for (Nic& nic : in.nics) {
    if (IsMac(nic.mac)) nic.mac = Lower(nic.mac);
    CanonicalAddresses(nic.private_ipv4s);
    CanonicalAddresses(nic.public_ipv4s);
    CanonicalAddresses(nic.ipv6s);
    CanonicalCidr(nic.subnet_ipv4_cidr);
    CanonicalCidrs(nic.subnet_ipv6_cidrs);
    CanonicalCidr(nic.vpc_ipv4_cidr);
    CanonicalCidrs(nic.vpc_ipv4_cidrs);
    CanonicalCidrs(nic.vpc_ipv6_cidrs);
  }
  in.launch_time = TruncateToSeconds(in.launch_time);
  if (in.iam && in.iam->credentials) {
    in.iam->credentials->expiration = TruncateToSeconds(in.iam->credentials->expiration);
    in.iam->credentials->last_updated = TruncateToSeconds(in.iam->credentials->last_updated);
  }
  CanonicaliseGuestConfig(in);  // guest configuration fields
  CanonicaliseEc2Fields(in);     // EC2 fidelity fields
}

void SortNics(Instance& in) {
  std::stable_sort(in.nics.begin(), in.nics.end(),
                   [](const Nic& a, const Nic& b) { return a.device_number < b.device_number; });
}

// ---------------------------------------------------------------------------
// Validation.

enum class Family { kV4, kV6 };

// The offending value, quoted, when short enough to help rather than flood.
std::string Quoted(std::string_view text) {
  if (text.size() > 64) return "";
  return ": \"" + std::string(text) + "\"";
}

Status CheckAddress(const Path& at, std::string_view text, Family family) {
  if (family == Family::kV4 && IsCanonicalIpv4(text)) return Status::Ok();
  auto ip = common::IpAddress::Parse(text);
  if (!ip) return Err(at, "not an IP address" + Quoted(text));
  if (ip->is_v4() != (family == Family::kV4)) {
    return Err(at, family == Family::kV4 ? "not an IPv4 address" : "not an IPv6 address");
  }
  if (ip->ToString() != text) return Err(at, "not canonical (want " + ip->ToString() + ")");
  return Status::Ok();
}

Status CheckCidr(const Path& at, std::string_view text, Family family) {
  if (family == Family::kV4 && IsCanonicalIpv4Cidr(text)) return Status::Ok();
  auto cidr = common::Cidr::Parse(text);
  if (!cidr) {
    return Err(at, "not a CIDR with zero host bits" + Quoted(text));
  }
  if (cidr->address.is_v4() != (family == Family::kV4)) {
    return Err(at, family == Family::kV4 ? "not an IPv4 CIDR" : "not an IPv6 CIDR");
  }
  if (cidr->ToString() != text) return Err(at, "not canonical (want " + cidr->ToString() + ")");
  return Status::Ok();
}

Status CheckCidrs(const Path& at, const StrList& list, Family family) {
  for (size_t i = 0; i < list.size(); ++i) {
    if (Status s = CheckCidr(Path(at, i), list[i], family); !s.ok()) return s;
  }
  return Status::Ok();
}

Status CheckTime(const Path& at, TimePoint t) {
  // Every TimePoint (nanoseconds in 64 bits: years 1677..2262) has an RFC 3339
  // spelling; only the precision can be lost.
  if (TruncateToSeconds(t) != t) return Err(at, "has a fraction of a second (Normalize truncates)");
  return Status::Ok();
}

// Which parts of the canonical form Validate insists on: FromJson checks
// before it sorts the NICs, so that indexes in messages match its input.
struct CheckMode {
  bool nic_order = true;
};

Status CheckNic(const Path& at, const Nic& nic) {
  if (!IsMac(nic.mac)) {
    return Err(Path(at, "mac"), "not a MAC address (want 02:00:00:00:00:01 form)");
  }
  if (Lower(nic.mac) != nic.mac) return Err(Path(at, "mac"), "not lower case");
  if (nic.device_number < 0 || nic.device_number > 127) {
    return Err(Path(at, "device_number"), std::to_string(nic.device_number) + " not in 0..127");
  }
  if (nic.network_card_index < 0 || nic.network_card_index > 127) {
    return Err(Path(at, "network_card_index"),
               std::to_string(nic.network_card_index) + " not in 0..127");
  }
  const std::pair<const char*, const Str*> texts[] = {
      {"interface_id", &nic.interface_id},     {"owner_id", &nic.owner_id},
      {"local_hostname", &nic.local_hostname}, {"public_hostname", &nic.public_hostname},
      {"subnet_id", &nic.subnet_id},           {"vpc_id", &nic.vpc_id},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = CheckText(Path(at, name), *value); !s.ok()) return s;
  }
  const std::tuple<const char*, const StrList*, Family> lists[] = {
      {"private_ipv4s", &nic.private_ipv4s, Family::kV4},
      {"public_ipv4s", &nic.public_ipv4s, Family::kV4},
      {"ipv6s", &nic.ipv6s, Family::kV6},
  };
  for (const auto& [name, list, family] : lists) {
    for (size_t i = 0; i < list->size(); ++i) {
      if (Status s = CheckAddress(Path(Path(at, name), i), (*list)[i], family); !s.ok()) {
        return s;
      }
    }
  }
  if (!nic.subnet_ipv4_cidr.empty()) {
    if (Status s = CheckCidr(Path(at, "subnet_ipv4_cidr"), nic.subnet_ipv4_cidr, Family::kV4);
        !s.ok()) {
      return s;
    }
  }
  if (!nic.vpc_ipv4_cidr.empty()) {
    if (Status s = CheckCidr(Path(at, "vpc_ipv4_cidr"), nic.vpc_ipv4_cidr, Family::kV4); !s.ok()) {
      return s;
    }
  }
  if (Status s = CheckCidrs(Path(at, "subnet_ipv6_cidrs"), nic.subnet_ipv6_cidrs, Family::kV6);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "vpc_ipv4_cidrs"), nic.vpc_ipv4_cidrs, Family::kV4);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "vpc_ipv6_cidrs"), nic.vpc_ipv6_cidrs, Family::kV6);
      !s.ok()) {
    return s;
  }
  const Path groups(at, "security_groups");
  for (size_t i = 0; i < nic.security_groups.size(); ++i) {
    const Path p(groups, i);
    if (nic.security_groups[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, nic.security_groups[i]); !s.ok()) return s;
  }
  const Path group_ids(at, "security_group_ids");
  for (size_t i = 0; i < nic.security_group_ids.size(); ++i) {
    const Path p(group_ids, i);
    if (nic.security_group_ids[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, nic.security_group_ids[i]); !s.ok()) return s;
  }
  return CheckNicEc2Fields(at, nic);  // EC2 fidelity fields
}

// EC2 serves tags/instance/<key> only for keys of this shape (its rule when
// InstanceMetadataTags is enabled; "." ".." and "_index" would be ambiguous
// path segments).
bool IsImdsTagKey(std::string_view key) {
  return !key.empty() && AllOf(key, "+-=._:@") && key != "." && key != ".." && key != "_index";
}

Status ValidateImpl(const Instance& in, CheckMode mode) {
  if (in.id.empty() || in.id.size() > 128 || !AllOf(in.id, "._:-")) {
    return Err("/id", "must be 1..128 characters of [A-Za-z0-9._:-]");
  }
  if (in.network.empty() || in.network.size() > 64 || !AllOf(in.network, "._-")) {
    return Err("/network", "must be 1..64 characters of [A-Za-z0-9._-]");
  }
  const std::pair<const char*, const Str*> texts[] = {
      {"name", &in.name},
      {"hostname", &in.hostname},
      {"local_hostname", &in.local_hostname},
      {"public_hostname", &in.public_hostname},
      {"account_id", &in.account_id},
      {"image_id", &in.image_id},
      {"instance_type", &in.instance_type},
      {"kernel_id", &in.kernel_id},
      {"ramdisk_id", &in.ramdisk_id},
      {"reservation_id", &in.reservation_id},
      {"region", &in.region},
      {"availability_zone", &in.availability_zone},
      {"availability_zone_id", &in.availability_zone_id},
      {"architecture", &in.architecture},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = CheckText(Path(Path(), name), *value); !s.ok()) return s;
  }
  if (in.launch_index < 0) {
    return Err("/launch_index", std::to_string(in.launch_index) + " is negative");
  }
  if (Status s = CheckTime(Path("/launch_time"), in.launch_time); !s.ok()) return s;

  // NICs: each on its own, then what must be unique across them.
  // Keys are views into `in`, which outlives the maps.
  struct Listing {
    size_t nic;
    const char* list;
    size_t index;
  };
  std::map<int, size_t> device_numbers;
  std::map<std::string_view, size_t> macs;
  std::map<std::string_view, Listing> addresses;  // address -> its first listing
  const Path nics("/nics");
  for (size_t n = 0; n < in.nics.size(); ++n) {
    const Nic& nic = in.nics[n];
    const Path at(nics, n);
    if (Status s = CheckNic(at, nic); !s.ok()) return s;
    if (auto [it, fresh] = device_numbers.emplace(nic.device_number, n); !fresh) {
      return Err(
          Path(at, "device_number"),
          std::to_string(nic.device_number) + " also used by /nics/" + std::to_string(it->second));
    }
    if (auto [it, fresh] = macs.emplace(nic.mac, n); !fresh) {
      return Err(Path(at, "mac"), nic.mac + " also used by /nics/" + std::to_string(it->second));
    }
    if (mode.nic_order && n > 0 && in.nics[n - 1].device_number > nic.device_number) {
      return Err(Path(at, "device_number"), "NICs not ordered by device_number (Normalize sorts)");
    }
    const std::pair<const char*, const StrList*> lists[] = {
        {"private_ipv4s", &nic.private_ipv4s},
        {"public_ipv4s", &nic.public_ipv4s},
        {"ipv6s", &nic.ipv6s},
    };
    for (const auto& [name, list] : lists) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (auto [it, fresh] = addresses.emplace((*list)[i], Listing{n, name, i}); !fresh) {
          const Path list_at(at, name);
          const Listing& first = it->second;
          return Err(Path(list_at, i), "address " + (*list)[i] + " listed twice (also at /nics/" +
                                           std::to_string(first.nic) + "/" + first.list + "/" +
                                           std::to_string(first.index) + ")");
        }
      }
    }
  }

  std::set<std::string_view> key_names;
  const Path ssh_keys("/ssh_keys");
  for (size_t i = 0; i < in.ssh_keys.size(); ++i) {
    const SshKey& key = in.ssh_keys[i];
    const Path at(ssh_keys, i);
    if (key.name.empty()) return Err(Path(at, "name"), "empty");
    if (Status s = CheckText(Path(at, "name"), key.name); !s.ok()) return s;
    if (!key_names.insert(key.name).second) {
      return Err(Path(at, "name"), "\"" + key.name + "\" listed twice");
    }
    if (key.key.empty()) return Err(Path(at, "key"), "empty");
    if (key.key.find('\r') != std::string::npos || key.key.find('\n') != std::string::npos) {
      return Err(Path(at, "key"), "contains a line break (one key per entry)");
    }
    if (Status s = CheckText(Path(at, "key"), key.key); !s.ok()) return s;
  }

  const Path tags("/tags");
  for (const auto& [key, value] : in.tags) {
    const Path at(tags, key);
    // Lengths are limits (record_limits.h), not rules of the record.
    if (key.empty()) return Err(at, "key is empty");
    if (Utf8Length(key) < 0) return Err(at, "key is not valid UTF-8");
    if (HasControl(key)) return Err(at, "key contains a control character");
    if (Utf8Length(value) < 0) return Err(at, "value is not valid UTF-8");
    if (in.options.tags_enabled && !IsImdsTagKey(key)) {
      return Err(at,
                 "key cannot be served in instance metadata (only [a-zA-Z0-9+-=._:@], not \".\", "
                 "\"..\" or \"_index\") while metadata_options/instance_metadata_tags is enabled");
    }
  }

  if (in.iam) {
    const IamRole& iam = *in.iam;
    if (iam.name.empty() || iam.name.size() > 64 || !AllOf(iam.name, "+=,.@_-")) {
      return Err("/iam/role", "must be 1..64 characters of [A-Za-z0-9+=,.@_-]");
    }
    if (Status s = CheckText(Path("/iam/instance_profile_arn"), iam.instance_profile_arn); !s.ok()) {
      return s;
    }
    if (Status s = CheckText(Path("/iam/instance_profile_id"), iam.instance_profile_id); !s.ok()) {
      return s;
    }
    if (iam.credentials) {
      const Credentials& c = *iam.credentials;
      const std::pair<const char*, const Str*> parts[] = {
          {"access_key_id", &c.access_key_id},
          {"secret_access_key", &c.secret_access_key},
          {"token", &c.token},
      };
      const Path credentials("/iam/credentials");
      for (const auto& [name, value] : parts) {
        const Path at(credentials, name);
        if (value->empty()) return Err(at, "required");
        if (Status s = CheckText(at, *value); !s.ok()) return s;
      }
      if (Status s = CheckTime(Path("/iam/credentials/expiration"), c.expiration); !s.ok()) return s;
      if (Status s = CheckTime(Path("/iam/credentials/last_updated"), c.last_updated); !s.ok()) return s;
    }
  }

  const Path block_devices("/block_devices");
  for (const auto& [key, value] : in.block_devices) {
    const Path at(block_devices, key);
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        })) {
      return Err(at, "key must be 1 or more characters of [a-z0-9]");
    }
    if (value.empty()) return Err(at, "empty device name");
    if (Status s = CheckText(at, value); !s.ok()) return s;
  }

  if (in.options.hop_limit < 1 || in.options.hop_limit > 64) {
    return Err("/metadata_options/hop_limit",
               std::to_string(int{in.options.hop_limit}) + " not in 1..64");
  }
  if (Status s = ValidateLimits(in); !s.ok()) return s;
  // Guest configuration fields: network_config_json.cc.
  if (Status s = ValidateGuestConfig(in); !s.ok()) return s;
  // EC2 fidelity fields.
  if (Status s = ValidateEc2Fields(in); !s.ok()) return s;
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Reading JSON: types only, plus decoding (base64, RFC 3339). Values are
// checked afterwards by ValidateImpl.


// Keys and values interned when `interned` (tags and block devices: a fleet
// repeats the same few keys and most values).
auto StringMapReader(StringMap& out, bool interned = true) {
  return [&out, interned](const json::value& v, const Path& at) {
    if (!v.is_object()) return Err(at, "expected object");
    out.clear();
    out.reserve(v.get_object().size());
    for (const auto& member : v.get_object()) {
      if (!member.value().is_string()) return Err(Path(at, member.key()), "expected string");
      const json::string& value = member.value().get_string();
      const std::string_view text(value.data(), value.size());
      const std::string_view key(member.key().data(), member.key().size());
      if (interned) {
        out.insert_or_assign(Str::Interned(key), Str::Interned(text));
      } else {
        out.insert_or_assign(Str(key), Str(text));
      }
    }
    return Status::Ok();
  };
}

constexpr int kMinYear = 1678;
constexpr int kMaxYear = 2261;

auto Time(TimePoint& out) {
  return [&out](const json::value& v, const Path& at) {
    if (!v.is_string()) return Err(at, "expected string");
    const std::string_view text = v.get_string();
    // A TimePoint counts nanoseconds in 64 bits (years 1677..2262), and
    // ParseRfc3339 refuses what it cannot hold; whole years inside that are
    // the rule, checked first so the message says what is wrong.
    if (text.size() >= 4 && std::all_of(text.begin(), text.begin() + 4,
                                        [](char c) { return c >= '0' && c <= '9'; })) {
      const int year = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 +
                       (text[3] - '0');
      if (year < kMinYear || year > kMaxYear) {
        return Err(at, "year " + std::to_string(year) + " not in " + std::to_string(kMinYear) +
                           ".." + std::to_string(kMaxYear));
      }
    }
    auto t = common::ParseRfc3339(text);
    if (!t) return Err(at, "not an RFC 3339 time (want 2026-11-25T13:00:00Z form)");
    out = *t;
    return Status::Ok();
  };
}

// "enabled"/"disabled" and similar two-word enumerations.
auto Choice(bool& out, std::string_view if_true, std::string_view if_false) {
  return [&out, if_true, if_false](const json::value& v, const Path& at) {
    if (v.is_string() && v.get_string() == if_true) {
      out = true;
    } else if (v.is_string() && v.get_string() == if_false) {
      out = false;
    } else {
      return Err(at,
                 "expected \"" + std::string(if_true) + "\" or \"" + std::string(if_false) + "\"");
    }
    return Status::Ok();
  };
}

Status ReadNic(const json::value& v, const Path& at, Nic& nic) {
  return ReadObject(v, at,
                    {
                        {"mac", String(nic.mac)},
                        {"device_number", Int(nic.device_number)},
                        {"network_card_index", Int(nic.network_card_index)},
                        {"interface_id", String(nic.interface_id)},
                        {"owner_id", InternedString(nic.owner_id)},
                        {"local_hostname", InternedString(nic.local_hostname)},
                        {"public_hostname", InternedString(nic.public_hostname)},
                        {"private_ipv4s", StringArray(nic.private_ipv4s)},
                        {"public_ipv4s", StringArray(nic.public_ipv4s)},
                        {"ipv6s", StringArray(nic.ipv6s)},
                        {"subnet_id", InternedString(nic.subnet_id)},
                        {"subnet_ipv4_cidr", InternedString(nic.subnet_ipv4_cidr)},
                        {"subnet_ipv6_cidrs", InternedStringArray(nic.subnet_ipv6_cidrs)},
                        {"vpc_id", InternedString(nic.vpc_id)},
                        {"vpc_ipv4_cidr", InternedString(nic.vpc_ipv4_cidr)},
                        {"vpc_ipv4_cidrs", InternedStringArray(nic.vpc_ipv4_cidrs)},
                        {"vpc_ipv6_cidrs", InternedStringArray(nic.vpc_ipv6_cidrs)},
                        {"security_groups", InternedStringArray(nic.security_groups)},
                        {"security_group_ids", InternedStringArray(nic.security_group_ids)},
                        // EC2 fidelity fields.
                        {"ipv4_prefixes", StringArray(nic.ipv4_prefixes)},
                        {"ipv6_prefixes", StringArray(nic.ipv6_prefixes)},
                        {"ipv4_associations", StringMapReader(nic.ipv4_associations, false)},
                    });
}

auto Nics(std::vector<Nic>& out) {
  return [&out](const json::value& v, const Path& at) {
    if (!v.is_array()) return Err(at, "expected array");
    out.clear();
    const auto& array = v.get_array();
    out.reserve(array.size());
    for (size_t i = 0; i < array.size(); ++i) {
      if (Status s = ReadNic(array[i], Path(at, i), out.emplace_back()); !s.ok()) return s;
    }
    return Status::Ok();
  };
}

auto SshKeys(std::vector<SshKey>& out) {
  return [&out](const json::value& v, const Path& at) {
    if (!v.is_array()) return Err(at, "expected array");
    out.clear();
    const auto& array = v.get_array();
    out.reserve(array.size());
    for (size_t i = 0; i < array.size(); ++i) {
      SshKey& key = out.emplace_back();
      if (Status s = ReadObject(array[i], Path(at, i),
                                {{"name", InternedString(key.name)}, {"key", String(key.key)}});
          !s.ok()) {
        return s;
      }
    }
    return Status::Ok();
  };
}

auto UserData(std::optional<Str>& out) {
  return [&out](const json::value& v, const Path& at) {
    if (!v.is_string()) return Err(at, "expected string (base64)");
    // Its size is a limit (record_limits.h) that the admin API checks; the
    // text it decodes is bounded by the record's (Limit::kRecordBytes).
    std::string bytes;
    if (!Base64DecodeTo(v.get_string(), bytes)) return Err(at, "not valid base64");
    out = std::move(bytes);
    return Status::Ok();
  };
}

auto CredentialsField(std::optional<model::Credentials>& out) {
  return [&out](const json::value& v, const Path& at) {
    model::Credentials c;
    if (Status s = ReadObject(v, at,
                              {
                                  {"access_key_id", String(c.access_key_id)},
                                  {"secret_access_key", String(c.secret_access_key)},
                                  {"token", String(c.token)},
                                  {"expiration", Time(c.expiration)},
                                  {"last_updated", Time(c.last_updated)},
                              });
        !s.ok()) {
      return s;
    }
    out = std::move(c);
    return Status::Ok();
  };
}

auto Iam(std::optional<IamRole>& out) {
  return [&out](const json::value& v, const Path& at) {
    IamRole iam;
    if (Status s = ReadObject(v, at,
                              {
                                  {"role", InternedString(iam.name)},
                                  {"instance_profile_arn", InternedString(iam.instance_profile_arn)},
                                  {"instance_profile_id", String(iam.instance_profile_id)},
                                  {"credentials", CredentialsField(iam.credentials)},
                              });
        !s.ok()) {
      return s;
    }
    out = std::move(iam);
    return Status::Ok();
  };
}

auto Options(MetadataOptions& out) {
  return [&out](const json::value& v, const Path& at) {
    bool required = out.http_tokens == MetadataOptions::HttpTokens::kRequired;
    int hop_limit = out.hop_limit;
    if (Status s = ReadObject(
            v, at,
            {
                {"http_tokens", Choice(required, "required", "optional")},
                {"http_endpoint", Choice(out.http_endpoint_enabled, "enabled", "disabled")},
                {"hop_limit", Int(hop_limit)},
                {"instance_metadata_tags", Choice(out.tags_enabled, "enabled", "disabled")},
            });
        !s.ok()) {
      return s;
    }
    out.http_tokens =
        required ? MetadataOptions::HttpTokens::kRequired : MetadataOptions::HttpTokens::kOptional;
    // Checked here as well as in Validate: the field is one byte.
    if (hop_limit < 1 || hop_limit > 64) {
      return Err("/metadata_options/hop_limit", std::to_string(hop_limit) + " not in 1..64");
    }
    out.hop_limit = static_cast<uint8_t>(hop_limit);
    return Status::Ok();
  };
}

// "limits": each member optional; what is absent keeps the server's default.
auto Limits(Box<RequestLimits>& out) {
  return [&out](const json::value& v, const Path& at) {
    RequestLimits limits;
    auto optional_int = [](std::optional<int>& field) {
      return [&field](const json::value& x, const Path& p) {
        int n = 0;
        if (Status s = IntValue(x, p, n); !s.ok()) return s;
        field = n;
        return Status::Ok();
      };
    };
    auto rate = optional_int(limits.requests_per_second);
    auto burst = optional_int(limits.burst);
    auto in_flight = optional_int(limits.max_in_flight);
    if (Status s = ReadObject(v, at,
                              {
                                  {"requests_per_second", rate},
                                  {"burst", burst},
                                  {"max_in_flight", in_flight},
                              });
        !s.ok()) {
      return s;
    }
    out.Set(std::move(limits));  // nothing set: no allocation
    return Status::Ok();
  };
}

Status ValidateLimits(const Instance& in) {
  const RequestLimits& l = *in.limits;
  const std::string max = std::to_string(kMaxRequestLimit);
  if (l.requests_per_second &&
      (*l.requests_per_second < 0 || *l.requests_per_second > kMaxRequestLimit)) {
    return Err("/limits/requests_per_second",
               std::to_string(*l.requests_per_second) + " not in 0.." + max + " (0: no limit)");
  }
  if (l.burst && (*l.burst < 1 || *l.burst > kMaxRequestLimit)) {
    return Err("/limits/burst", std::to_string(*l.burst) + " not in 1.." + max);
  }
  if (l.max_in_flight && (*l.max_in_flight < 0 || *l.max_in_flight > kMaxRequestLimit)) {
    return Err("/limits/max_in_flight",
               std::to_string(*l.max_in_flight) + " not in 0.." + max + " (0: no limit)");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Writing JSON.

void PutString(json::object& o, std::string_view key, const Str& value) {
  if (!value.empty()) o[key] = value.view();
}

void PutArray(json::object& o, std::string_view key, const StrList& values) {
  if (values.empty()) return;
  json::array a;
  a.reserve(values.size());
  for (const auto& v : values) a.emplace_back(v.view());
  o[key] = std::move(a);
}

void PutMap(json::object& o, std::string_view key, const StringMap& m) {
  if (m.empty()) return;
  json::object out;
  for (const auto& [k, v] : m) out[k.view()] = v.view();
  o[key] = std::move(out);
}

void PutTime(json::object& o, std::string_view key, TimePoint t) {
  if (IsSet(t)) o[key] = common::FormatRfc3339(t);
}

json::object NicToJson(const Nic& nic) {
  json::object o;
  PutString(o, "mac", nic.mac);
  o["device_number"] = nic.device_number;
  o["network_card_index"] = nic.network_card_index;
  PutString(o, "interface_id", nic.interface_id);
  PutString(o, "owner_id", nic.owner_id);
  PutString(o, "local_hostname", nic.local_hostname);
  PutString(o, "public_hostname", nic.public_hostname);
  PutArray(o, "private_ipv4s", nic.private_ipv4s);
  PutArray(o, "public_ipv4s", nic.public_ipv4s);
  PutArray(o, "ipv6s", nic.ipv6s);
  PutString(o, "subnet_id", nic.subnet_id);
  PutString(o, "subnet_ipv4_cidr", nic.subnet_ipv4_cidr);
  PutArray(o, "subnet_ipv6_cidrs", nic.subnet_ipv6_cidrs);
  PutString(o, "vpc_id", nic.vpc_id);
  PutString(o, "vpc_ipv4_cidr", nic.vpc_ipv4_cidr);
  PutArray(o, "vpc_ipv4_cidrs", nic.vpc_ipv4_cidrs);
  PutArray(o, "vpc_ipv6_cidrs", nic.vpc_ipv6_cidrs);
  PutArray(o, "security_groups", nic.security_groups);
  PutArray(o, "security_group_ids", nic.security_group_ids);
  // EC2 fidelity fields.
  PutArray(o, "ipv4_prefixes", nic.ipv4_prefixes);
  PutArray(o, "ipv6_prefixes", nic.ipv6_prefixes);
  PutMap(o, "ipv4_associations", nic.ipv4_associations);
  return o;
}

// ---------------------------------------------------------------------------
// EC2 fidelity fields and platform events. Kept in one
// place; hooked in by one line each in Canonicalise, CheckNic, ValidateImpl,
// ReadNic, NicToJson, FromJson and ToJson. Schema: docs/instance.md "EC2
// fields" and "Platform events".

constexpr std::string_view kSpotActions[] = {"terminate", "stop", "hibernate"};
constexpr std::string_view kEventCodes[] = {"instance-reboot", "system-reboot",
                                            "system-maintenance", "instance-retirement",
                                            "instance-stop"};
constexpr std::string_view kLifecycleStates[] = {
    "InService",         "Detached",       "Standby",        "Terminated",
    "Warmed:Hibernated", "Warmed:Running", "Warmed:Stopped", "Warmed:Terminated"};
// A delay longer than this is a mistake (and would overflow nothing, but
// would leave an event waiting for a decade).
constexpr int64_t kMaxDelaySeconds = int64_t{10} * 366 * 24 * 3600;

template <size_t N>
bool OneOf(std::string_view value, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), value) != std::end(set);
}

template <size_t N>
std::string Choices(const std::string_view (&set)[N]) {
  std::string out;
  for (std::string_view v : set) {
    if (!out.empty()) out += ", ";
    out += "\"";
    out += v;
    out += "\"";
  }
  return out;
}

std::string_view EventStateName(ScheduledEvent::State s) {
  switch (s) {
    case ScheduledEvent::State::kActive: return "active";
    case ScheduledEvent::State::kCompleted: return "completed";
    case ScheduledEvent::State::kCanceled: return "canceled";
  }
  return "active";
}

void TruncateCredentials(std::optional<Credentials>& c) {
  if (!c) return;
  c->expiration = TruncateToSeconds(c->expiration);
  c->last_updated = TruncateToSeconds(c->last_updated);
}

void CanonicaliseEc2Fields(Instance& in) {
  for (Nic& nic : in.nics) {
    CanonicalCidrs(nic.ipv4_prefixes);
    CanonicalCidrs(nic.ipv6_prefixes);
    StringMap associations;
    for (const auto& [public_ip, private_ip] : nic.ipv4_associations) {
      std::string p = public_ip;
      std::string q = private_ip;
      if (auto ip = common::IpAddress::Parse(p)) p = ip->ToString();
      if (auto ip = common::IpAddress::Parse(q)) q = ip->ToString();
      associations[std::move(p)] = std::move(q);
    }
    nic.ipv4_associations = std::move(associations);
  }
  if (!in.ec2.has_value()) return;
  Ec2Fields& ec2 = in.ec2.mut();
  TruncateCredentials(ec2.identity_credentials);
  PlatformEvents& e = ec2.events;
  if (e.spot) {
    e.spot->time = TruncateToSeconds(e.spot->time);
    e.spot->notice_time = TruncateToSeconds(e.spot->notice_time);
  }
  if (e.rebalance_notice) e.rebalance_notice = TruncateToSeconds(*e.rebalance_notice);
  for (ScheduledEvent& ev : e.scheduled) {
    ev.not_before = TruncateToSeconds(ev.not_before);
    ev.not_after = TruncateToSeconds(ev.not_after);
    ev.not_before_deadline = TruncateToSeconds(ev.not_before_deadline);
    ev.notice_time = TruncateToSeconds(ev.notice_time);
  }
  for (LifecycleTransition& t : e.lifecycle) t.at = TruncateToSeconds(t.at);
}

bool Contains(const StrList& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

Status CheckNicEc2Fields(const Path& at, const Nic& nic) {
  if (Status s = CheckCidrs(Path(at, "ipv4_prefixes"), nic.ipv4_prefixes, Family::kV4); !s.ok()) {
    return s;
  }
  if (Status s = CheckCidrs(Path(at, "ipv6_prefixes"), nic.ipv6_prefixes, Family::kV6); !s.ok()) {
    return s;
  }
  for (const auto& [public_ip, private_ip] : nic.ipv4_associations) {
    const Path associations(at, "ipv4_associations");
    const Path p(associations, public_ip);
    if (Status s = CheckAddress(p, public_ip, Family::kV4); !s.ok()) return s;
    if (!Contains(nic.public_ipv4s, public_ip)) return Err(p, "not one of this NIC's public_ipv4s");
    if (Status s = CheckAddress(p, private_ip, Family::kV4); !s.ok()) return s;
    if (!Contains(nic.private_ipv4s, private_ip)) {
      return Err(p, private_ip + " is not one of this NIC's private_ipv4s");
    }
  }
  return Status::Ok();
}

Status CheckCredentials(const Path& at, const Credentials& c) {
  const std::pair<const char*, const Str*> parts[] = {
      {"access_key_id", &c.access_key_id},
      {"secret_access_key", &c.secret_access_key},
      {"token", &c.token},
  };
  for (const auto& [name, value] : parts) {
    const Path p(at, name);
    if (value->empty()) return Err(p, "required");
    if (Status s = CheckText(p, *value); !s.ok()) return s;
  }
  if (Status s = CheckTime(Path(at, "expiration"), c.expiration); !s.ok()) return s;
  return CheckTime(Path(at, "last_updated"), c.last_updated);
}

Status CheckTextList(const Path& at, const StrList& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    const Path p(at, i);
    if (list[i].empty()) return Err(p, "empty");
    if (Status s = CheckText(p, list[i]); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ValidateEvents(const PlatformEvents& e) {
  if (e.spot) {
    const Path at("/events/spot");
    if (!OneOf(e.spot->action, kSpotActions)) {
      return Err(Path(at, "action"), "must be one of " + Choices(kSpotActions));
    }
    if (!IsSet(e.spot->time)) return Err(Path(at, "time"), "required");
    if (Status s = CheckTime(Path(at, "time"), e.spot->time); !s.ok()) return s;
    if (Status s = CheckTime(Path(at, "notice_time"), e.spot->notice_time); !s.ok()) return s;
  }
  if (e.rebalance_notice) {
    if (Status s = CheckTime(Path("/events/rebalance/notice_time"), *e.rebalance_notice); !s.ok()) {
      return s;
    }
  }
  std::set<std::string_view> ids;
  const Path scheduled("/events/scheduled");
  for (size_t i = 0; i < e.scheduled.size(); ++i) {
    const ScheduledEvent& ev = e.scheduled[i];
    const Path at(scheduled, i);
    if (ev.id.empty()) return Err(Path(at, "id"), "required");
    if (Status s = CheckText(Path(at, "id"), ev.id); !s.ok()) return s;
    if (!ids.insert(ev.id).second) return Err(Path(at, "id"), "\"" + ev.id + "\" listed twice");
    if (!OneOf(ev.code, kEventCodes)) {
      return Err(Path(at, "code"), "must be one of " + Choices(kEventCodes));
    }
    if (Status s = CheckText(Path(at, "description"), ev.description); !s.ok()) return s;
    if (!IsSet(ev.not_before)) return Err(Path(at, "not_before"), "required");
    const std::pair<const char*, TimePoint> times[] = {
        {"not_before", ev.not_before},
        {"not_after", ev.not_after},
        {"not_before_deadline", ev.not_before_deadline},
        {"notice_time", ev.notice_time},
    };
    for (const auto& [name, t] : times) {
      if (Status s = CheckTime(Path(at, name), t); !s.ok()) return s;
    }
    if (IsSet(ev.not_after) && ev.not_after < ev.not_before) {
      return Err(Path(at, "not_after"), "earlier than not_before");
    }
  }
  const Path lifecycle("/events/target_lifecycle_states");
  for (size_t i = 0; i < e.lifecycle.size(); ++i) {
    const LifecycleTransition& t = e.lifecycle[i];
    const Path at(lifecycle, i);
    if (!OneOf(t.state, kLifecycleStates)) {
      return Err(Path(at, "state"), "must be one of " + Choices(kLifecycleStates));
    }
    if (Status s = CheckTime(Path(at, "at"), t.at); !s.ok()) return s;
    if (i > 0 && t.at < e.lifecycle[i - 1].at) {
      return Err(Path(at, "at"), "earlier than the state before it (list them in time order)");
    }
  }
  return Status::Ok();
}

Status ValidateEc2Fields(const Instance& in) {
  const std::pair<const char*, const Str*> texts[] = {
      {"ami_manifest_path", &in.ec2->ami_manifest_path},
      {"instance_action", &in.ec2->instance_action},
      {"instance_life_cycle", &in.ec2->instance_life_cycle},
      {"profile", &in.ec2->profile},
      {"placement_group", &in.ec2->placement_group},
      {"host_id", &in.ec2->host_id},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = CheckText(Path(Path(), name), *value); !s.ok()) return s;
  }
  const std::pair<const char*, const StrList*> lists[] = {
      {"ancestor_ami_ids", &in.ec2->ancestor_ami_ids},
      {"product_codes", &in.ec2->product_codes},
      {"billing_products", &in.ec2->billing_products},
  };
  for (const auto& [name, list] : lists) {
    if (Status s = CheckTextList(Path(Path(), name), *list); !s.ok()) return s;
  }
  // EC2 partition placement groups have at most 7 partitions.
  if (in.ec2->partition_number < 0 || in.ec2->partition_number > 7) {
    return Err("/partition_number", std::to_string(in.ec2->partition_number) + " not in 0..7");
  }
  if (in.ec2->identity_credentials) {
    if (Status s = CheckCredentials(Path("/identity_credentials"), *in.ec2->identity_credentials); !s.ok()) {
      return s;
    }
  }
  return ValidateEvents(in.ec2->events);
}

// An event time: an RFC 3339 string, or a delay {"in_seconds": N} counted
// from `now` (ParseOptions::now, else the system clock at parse time). Only
// event times take a delay: everything else describes the instance, events
// describe when something happens to it.
auto EventTime(TimePoint& out, const ParseOptions& parse) {
  return [&out, &parse](const json::value& v, const Path& at) {
    if (!v.is_object()) return Time(out)(v, at);
    int seconds = -1;
    bool has_seconds = false;
    if (Status s = ReadObject(v, at,
                              {{"in_seconds",
                                [&](const json::value& x, const Path& p) {
                                  has_seconds = true;
                                  return Int(seconds)(x, p);
                                }}});
        !s.ok()) {
      return s;
    }
    if (!has_seconds) return Err(Path(at, "in_seconds"), "required");
    if (seconds < 0 || seconds > kMaxDelaySeconds) {
      return Err(Path(at, "in_seconds"), std::to_string(seconds) + " not in 0.." +
                                              std::to_string(kMaxDelaySeconds));
    }
    const TimePoint now = parse.now.value_or(std::chrono::system_clock::now());
    out = TruncateToSeconds(now) + std::chrono::seconds(seconds);
    return Status::Ok();
  };
}

auto Events(PlatformEvents& out, const ParseOptions& parse) {
  return [&out, &parse](const json::value& v, const Path& at) {
    PlatformEvents e;
    auto spot = [&](const json::value& x, const Path& p) {
      SpotInterruption s;
      if (Status st = ReadObject(x, p,
                                 {{"action", String(s.action)},
                                  {"time", EventTime(s.time, parse)},
                                  {"notice_time", EventTime(s.notice_time, parse)}});
          !st.ok()) {
        return st;
      }
      e.spot = std::move(s);
      return Status::Ok();
    };
    auto rebalance = [&](const json::value& x, const Path& p) {
      TimePoint notice{};
      bool has_notice = false;
      if (Status st = ReadObject(x, p,
                                 {{"notice_time", [&](const json::value& y, const Path& q) {
                                     has_notice = true;
                                     return EventTime(notice, parse)(y, q);
                                   }}});
          !st.ok()) {
        return st;
      }
      if (!has_notice) return Err(Path(p, "notice_time"), "required");
      e.rebalance_notice = notice;
      return Status::Ok();
    };
    auto scheduled = [&](const json::value& x, const Path& p) {
      if (!x.is_array()) return Err(p, "expected array");
      for (size_t i = 0; i < x.get_array().size(); ++i) {
        ScheduledEvent ev;
        std::string state = "active";
        if (Status st = ReadObject(x.get_array()[i], Path(p, i),
                                   {{"id", String(ev.id)},
                                    {"code", String(ev.code)},
                                    {"state", String(state)},
                                    {"description", String(ev.description)},
                                    {"not_before", EventTime(ev.not_before, parse)},
                                    {"not_after", EventTime(ev.not_after, parse)},
                                    {"not_before_deadline", EventTime(ev.not_before_deadline, parse)},
                                    {"notice_time", EventTime(ev.notice_time, parse)}});
            !st.ok()) {
          return st;
        }
        if (state == "active") {
          ev.state = ScheduledEvent::State::kActive;
        } else if (state == "completed") {
          ev.state = ScheduledEvent::State::kCompleted;
        } else if (state == "canceled") {
          ev.state = ScheduledEvent::State::kCanceled;
        } else {
          return Err(Path(Path(p, i), "state"),
                     "expected \"active\", \"completed\" or \"canceled\"");
        }
        e.scheduled.push_back(std::move(ev));
      }
      return Status::Ok();
    };
    auto lifecycle = [&](const json::value& x, const Path& p) {
      if (!x.is_array()) return Err(p, "expected array");
      for (size_t i = 0; i < x.get_array().size(); ++i) {
        LifecycleTransition t;
        if (Status st = ReadObject(x.get_array()[i], Path(p, i),
                                   {{"state", String(t.state)}, {"at", EventTime(t.at, parse)}});
            !st.ok()) {
          return st;
        }
        e.lifecycle.push_back(std::move(t));
      }
      return Status::Ok();
    };
    if (Status s = ReadObject(v, at,
                              {{"spot", spot},
                               {"rebalance", rebalance},
                               {"scheduled", scheduled},
                               {"target_lifecycle_states", lifecycle}});
        !s.ok()) {
      return s;
    }
    out = std::move(e);
    return Status::Ok();
  };
}

json::object CredentialsToJson(const Credentials& c) {
  json::object creds;
  PutString(creds, "access_key_id", c.access_key_id);
  PutString(creds, "secret_access_key", c.secret_access_key);
  PutString(creds, "token", c.token);
  PutTime(creds, "expiration", c.expiration);
  PutTime(creds, "last_updated", c.last_updated);
  return creds;
}

json::object EventsToJson(const PlatformEvents& e) {
  json::object o;
  if (e.spot) {
    json::object spot;
    spot["action"] = e.spot->action.view();
    PutTime(spot, "time", e.spot->time);
    PutTime(spot, "notice_time", e.spot->notice_time);
    o["spot"] = std::move(spot);
  }
  if (e.rebalance_notice) {
    // An unset (epoch) notice time still round-trips: it means "at once".
    o["rebalance"] = json::object{{"notice_time", common::FormatRfc3339(*e.rebalance_notice)}};
  }
  if (!e.scheduled.empty()) {
    json::array events;
    for (const ScheduledEvent& ev : e.scheduled) {
      json::object x;
      x["id"] = ev.id.view();
      x["code"] = ev.code.view();
      x["state"] = EventStateName(ev.state);
      PutString(x, "description", ev.description);
      PutTime(x, "not_before", ev.not_before);
      PutTime(x, "not_after", ev.not_after);
      PutTime(x, "not_before_deadline", ev.not_before_deadline);
      PutTime(x, "notice_time", ev.notice_time);
      events.emplace_back(std::move(x));
    }
    o["scheduled"] = std::move(events);
  }
  if (!e.lifecycle.empty()) {
    json::array steps;
    for (const LifecycleTransition& t : e.lifecycle) {
      json::object x;
      x["state"] = t.state.view();
      PutTime(x, "at", t.at);
      steps.emplace_back(std::move(x));
    }
    o["target_lifecycle_states"] = std::move(steps);
  }
  return o;
}

// Defaults are omitted, so records without these fields write exactly what
// they did before this block existed.
void Ec2FieldsToJson(const Instance& in, json::object& o) {
  PutString(o, "ami_manifest_path", in.ec2->ami_manifest_path);
  PutArray(o, "ancestor_ami_ids", in.ec2->ancestor_ami_ids);
  PutArray(o, "product_codes", in.ec2->product_codes);
  PutArray(o, "billing_products", in.ec2->billing_products);
  PutString(o, "instance_action", in.ec2->instance_action);
  PutString(o, "instance_life_cycle", in.ec2->instance_life_cycle);
  PutString(o, "profile", in.ec2->profile);
  PutString(o, "placement_group", in.ec2->placement_group);
  PutString(o, "host_id", in.ec2->host_id);
  if (in.ec2->partition_number != 0) o["partition_number"] = in.ec2->partition_number;
  if (in.ec2->detailed_monitoring) o["monitoring"] = "enabled";
  if (in.ec2->identity_credentials) {
    o["identity_credentials"] = CredentialsToJson(*in.ec2->identity_credentials);
  }
  if (!in.ec2->events.empty()) o["events"] = EventsToJson(in.ec2->events);
}
// --- end EC2 fidelity fields ---

}  // namespace

namespace {

// Puts the record's own text (what interning did not share) in one
// allocation: a fleet then pays one malloc per record for it, not a dozen
// (docs/design-notes.md, "Memory per instance"). The rare groups behind a
// Box keep their own blocks.
void PackStrings(Instance& in) {
  std::vector<Str*> fields;
  fields.reserve(32);
  for (Str* s : {&in.id, &in.name, &in.hostname, &in.local_hostname, &in.public_hostname,
                 &in.account_id, &in.image_id, &in.instance_type, &in.kernel_id, &in.ramdisk_id,
                 &in.reservation_id, &in.region, &in.availability_zone,
                 &in.availability_zone_id}) {
    fields.push_back(s);
  }
  if (in.user_data) fields.push_back(&*in.user_data);
  for (Nic& nic : in.nics) {
    for (Str* s : {&nic.mac, &nic.interface_id, &nic.owner_id, &nic.local_hostname,
                   &nic.public_hostname, &nic.subnet_id, &nic.subnet_ipv4_cidr, &nic.vpc_id,
                   &nic.vpc_ipv4_cidr}) {
      fields.push_back(s);
    }
    for (auto* list : {&nic.private_ipv4s, &nic.public_ipv4s, &nic.ipv6s}) {
      for (Str& s : *list) fields.push_back(&s);
    }
  }
  for (SshKey& key : in.ssh_keys) fields.push_back(&key.key);
  if (in.iam) {
    fields.push_back(&in.iam->instance_profile_id);
    if (in.iam->credentials) {
      Credentials& c = *in.iam->credentials;
      for (Str* s : {&c.access_key_id, &c.secret_access_key, &c.token}) fields.push_back(s);
    }
  }
  Str::Pack(fields.data(), fields.size());
}

}  // namespace

common::Result<Instance> FromJson(const json::value& v) { return FromJson(v, ParseOptions{}); }

common::Result<Instance> FromJson(const json::value& v, const ParseOptions& parse) {
  Instance in;
  Ec2Fields ec2;  // kept only if the record sets any of it
  bool has_id = false;
  bool has_network = false;
  auto id = String(in.id);
  auto network = InternedString(in.network);
  Status s = ReadObject(v, Path(),
                        {
                            {"id",
                             [&](const json::value& x, const Path& at) {
                               has_id = true;
                               return id(x, at);
                             }},
                            {"network",
                             [&](const json::value& x, const Path& at) {
                               has_network = true;
                               return network(x, at);
                             }},
                            {"name", String(in.name)},
                            {"hostname", InternedString(in.hostname)},
                            {"local_hostname", InternedString(in.local_hostname)},
                            {"public_hostname", InternedString(in.public_hostname)},
                            {"account_id", InternedString(in.account_id)},
                            {"image_id", InternedString(in.image_id)},
                            {"instance_type", InternedString(in.instance_type)},
                            {"kernel_id", InternedString(in.kernel_id)},
                            {"ramdisk_id", InternedString(in.ramdisk_id)},
                            {"launch_index", Int(in.launch_index)},
                            {"reservation_id", String(in.reservation_id)},
                            {"region", InternedString(in.region)},
                            {"availability_zone", InternedString(in.availability_zone)},
                            {"availability_zone_id", InternedString(in.availability_zone_id)},
                            {"architecture", InternedString(in.architecture)},
                            {"launch_time", Time(in.launch_time)},
                            {"nics", Nics(in.nics)},
                            {"ssh_keys", SshKeys(in.ssh_keys)},
                            {"user_data", UserData(in.user_data)},
                            {"tags", StringMapReader(in.tags)},
                            {"iam", Iam(in.iam)},
                            {"block_devices", StringMapReader(in.block_devices)},
                            {"metadata_options", Options(in.options)},
                            {"limits", Limits(in.limits)},
                            // Guest configuration fields.
                            {"network_config",
                             [&in](const json::value& x, const Path& at) {
                               return ReadNetworkConfig(x, at, in.guest.mut().network_config);
                             }},
                            {"devices",
                             [&in](const json::value& x, const Path& at) {
                               return ReadDevices(x, at, in.guest.mut().devices);
                             }},
                            {"dedicated_cpus",
                             [&in](const json::value& x, const Path& at) {
                               return ReadIntArray(x, at, in.guest.mut().dedicated_cpus);
                             }},
                            {"vendor_data",
                             [&in](const json::value& x, const Path& at) {
                               return ReadJsonObjectText(x, at, in.guest.mut().vendor_data);
                             }},
                            {"flavours", InternedStringArray(in.flavours)},
                            // EC2 fidelity fields.
                            {"ami_manifest_path", InternedString(ec2.ami_manifest_path)},
                            {"ancestor_ami_ids", InternedStringArray(ec2.ancestor_ami_ids)},
                            {"product_codes", InternedStringArray(ec2.product_codes)},
                            {"billing_products", InternedStringArray(ec2.billing_products)},
                            {"instance_action", InternedString(ec2.instance_action)},
                            {"instance_life_cycle", InternedString(ec2.instance_life_cycle)},
                            {"profile", InternedString(ec2.profile)},
                            {"placement_group", InternedString(ec2.placement_group)},
                            {"host_id", String(ec2.host_id)},
                            {"partition_number", Int(ec2.partition_number)},
                            {"monitoring", Choice(ec2.detailed_monitoring, "enabled", "disabled")},
                            {"identity_credentials", CredentialsField(ec2.identity_credentials)},
                            {"events", Events(ec2.events, parse)},
                        });
  if (!s.ok()) return s;
  if (!has_id) return Err("/id", "required");
  if (!has_network) in.network = Str::Interned("default");
  in.ec2.Set(std::move(ec2));
  Canonicalise(in);
  if (Status v_status = ValidateImpl(in, CheckMode{.nic_order = false}); !v_status.ok()) {
    return v_status;
  }
  SortNics(in);
  PackStrings(in);
  return in;
}

common::Result<Instance> FromJsonText(std::string_view text) {
  // The document lives only while FromJson copies it into an Instance, so its
  // nodes come from one arena, a stack buffer first, released all at once:
  // no malloc/free per node on the store's load path. Records larger than the
  // buffer spill into heap blocks the arena frees on return.
  alignas(std::max_align_t) unsigned char arena_buffer[16 * 1024];
  unsigned char parser_buffer[4 * 1024];
  json::monotonic_resource arena(arena_buffer, sizeof(arena_buffer));
  json::stream_parser parser(json::storage_ptr(), json::parse_options(), parser_buffer);
  parser.reset(&arena);
  boost::system::error_code ec;
  const size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return common::InvalidArgument("invalid JSON: " + ec.message() + " at offset " +
                                   std::to_string(consumed));
  }
  return FromJson(parser.release());
}

json::value ToJson(const Instance& in) {
  json::object o;
  o["id"] = in.id.view();
  o["network"] = in.network.view();
  PutString(o, "name", in.name);
  PutString(o, "hostname", in.hostname);
  PutString(o, "local_hostname", in.local_hostname);
  PutString(o, "public_hostname", in.public_hostname);
  PutString(o, "account_id", in.account_id);
  PutString(o, "image_id", in.image_id);
  PutString(o, "instance_type", in.instance_type);
  PutString(o, "kernel_id", in.kernel_id);
  PutString(o, "ramdisk_id", in.ramdisk_id);
  o["launch_index"] = in.launch_index;
  PutString(o, "reservation_id", in.reservation_id);
  PutString(o, "region", in.region);
  PutString(o, "availability_zone", in.availability_zone);
  PutString(o, "availability_zone_id", in.availability_zone_id);
  // Always written: its default is not empty, so omitting "" would read back as "x86_64".
  o["architecture"] = in.architecture.view();
  PutTime(o, "launch_time", in.launch_time);
  if (!in.nics.empty()) {
    json::array nics;
    for (const Nic& nic : in.nics) nics.emplace_back(NicToJson(nic));
    o["nics"] = std::move(nics);
  }
  if (!in.ssh_keys.empty()) {
    json::array keys;
    for (const SshKey& key : in.ssh_keys)
      keys.emplace_back(json::object{{"name", key.name}, {"key", key.key}});
    o["ssh_keys"] = std::move(keys);
  }
  if (in.user_data) o["user_data"] = common::Base64Encode(*in.user_data);
  PutMap(o, "tags", in.tags);
  if (in.iam) {
    json::object iam;
    iam["role"] = in.iam->name.view();
    PutString(iam, "instance_profile_arn", in.iam->instance_profile_arn);
    PutString(iam, "instance_profile_id", in.iam->instance_profile_id);
    if (in.iam->credentials) {
      const model::Credentials& c = *in.iam->credentials;
      json::object creds;
      PutString(creds, "access_key_id", c.access_key_id);
      PutString(creds, "secret_access_key", c.secret_access_key);
      PutString(creds, "token", c.token);
      PutTime(creds, "expiration", c.expiration);
      PutTime(creds, "last_updated", c.last_updated);
      iam["credentials"] = std::move(creds);
    }
    o["iam"] = std::move(iam);
  }
  PutMap(o, "block_devices", in.block_devices);
  json::object options;
  options["http_tokens"] =
      in.options.http_tokens == MetadataOptions::HttpTokens::kRequired ? "required" : "optional";
  options["http_endpoint"] = in.options.http_endpoint_enabled ? "enabled" : "disabled";
  options["hop_limit"] = int{in.options.hop_limit};
  options["instance_metadata_tags"] = in.options.tags_enabled ? "enabled" : "disabled";
  o["metadata_options"] = std::move(options);
  if (*in.limits != RequestLimits{}) {
    const RequestLimits& l = *in.limits;
    json::object limits;
    if (l.requests_per_second) limits["requests_per_second"] = *l.requests_per_second;
    if (l.burst) limits["burst"] = *l.burst;
    if (l.max_in_flight) limits["max_in_flight"] = *l.max_in_flight;
    o["limits"] = std::move(limits);
  }
  GuestConfigToJson(in, o);  // guest configuration fields
  Ec2FieldsToJson(in, o);    // EC2 fidelity fields
  return o;
}

// ToJsonText writes the text directly, without building ToJson's tree first
// (it is on the import and store write paths). It must write exactly
// json::serialize(ToJson(x)): the same members in the same order.
// tests/model/instance_json_text_test.cc compares the two on varied records;
// a field added to ToJson is added here too.
namespace {

using json_writer::Writer;

void PutTimeText(Writer& w, std::string_view key, TimePoint t) {
  if (!IsSet(t)) return;
  w.Key(key);
  w.String(common::FormatRfc3339(t));
}

void CredentialsToText(Writer& w, const Credentials& c) {
  w.BeginObject();
  w.PutString("access_key_id", c.access_key_id);
  w.PutString("secret_access_key", c.secret_access_key);
  w.PutString("token", c.token);
  PutTimeText(w, "expiration", c.expiration);
  PutTimeText(w, "last_updated", c.last_updated);
  w.EndObject();
}

void NicToText(Writer& w, const Nic& nic) {
  w.BeginObject();
  w.PutString("mac", nic.mac);
  w.Key("device_number");
  w.Int(nic.device_number);
  w.Key("network_card_index");
  w.Int(nic.network_card_index);
  w.PutString("interface_id", nic.interface_id);
  w.PutString("owner_id", nic.owner_id);
  w.PutString("local_hostname", nic.local_hostname);
  w.PutString("public_hostname", nic.public_hostname);
  w.PutArray("private_ipv4s", nic.private_ipv4s);
  w.PutArray("public_ipv4s", nic.public_ipv4s);
  w.PutArray("ipv6s", nic.ipv6s);
  w.PutString("subnet_id", nic.subnet_id);
  w.PutString("subnet_ipv4_cidr", nic.subnet_ipv4_cidr);
  w.PutArray("subnet_ipv6_cidrs", nic.subnet_ipv6_cidrs);
  w.PutString("vpc_id", nic.vpc_id);
  w.PutString("vpc_ipv4_cidr", nic.vpc_ipv4_cidr);
  w.PutArray("vpc_ipv4_cidrs", nic.vpc_ipv4_cidrs);
  w.PutArray("vpc_ipv6_cidrs", nic.vpc_ipv6_cidrs);
  w.PutArray("security_groups", nic.security_groups);
  w.PutArray("security_group_ids", nic.security_group_ids);
  // EC2 fidelity fields.
  w.PutArray("ipv4_prefixes", nic.ipv4_prefixes);
  w.PutArray("ipv6_prefixes", nic.ipv6_prefixes);
  w.PutMap("ipv4_associations", nic.ipv4_associations);
  w.EndObject();
}

void EventsToText(Writer& w, const PlatformEvents& e) {
  w.BeginObject();
  if (e.spot) {
    w.Key("spot");
    w.BeginObject();
    w.Key("action");
    w.String(e.spot->action);
    PutTimeText(w, "time", e.spot->time);
    PutTimeText(w, "notice_time", e.spot->notice_time);
    w.EndObject();
  }
  if (e.rebalance_notice) {
    w.Key("rebalance");
    w.BeginObject();
    w.Key("notice_time");
    w.String(common::FormatRfc3339(*e.rebalance_notice));
    w.EndObject();
  }
  if (!e.scheduled.empty()) {
    w.Key("scheduled");
    w.BeginArray();
    for (const ScheduledEvent& ev : e.scheduled) {
      w.BeginObject();
      w.Key("id");
      w.String(ev.id);
      w.Key("code");
      w.String(ev.code);
      w.Key("state");
      w.String(EventStateName(ev.state));
      w.PutString("description", ev.description);
      PutTimeText(w, "not_before", ev.not_before);
      PutTimeText(w, "not_after", ev.not_after);
      PutTimeText(w, "not_before_deadline", ev.not_before_deadline);
      PutTimeText(w, "notice_time", ev.notice_time);
      w.EndObject();
    }
    w.EndArray();
  }
  if (!e.lifecycle.empty()) {
    w.Key("target_lifecycle_states");
    w.BeginArray();
    for (const LifecycleTransition& t : e.lifecycle) {
      w.BeginObject();
      w.Key("state");
      w.String(t.state);
      PutTimeText(w, "at", t.at);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

void Ec2FieldsToText(Writer& w, const Instance& in) {
  w.PutString("ami_manifest_path", in.ec2->ami_manifest_path);
  w.PutArray("ancestor_ami_ids", in.ec2->ancestor_ami_ids);
  w.PutArray("product_codes", in.ec2->product_codes);
  w.PutArray("billing_products", in.ec2->billing_products);
  w.PutString("instance_action", in.ec2->instance_action);
  w.PutString("instance_life_cycle", in.ec2->instance_life_cycle);
  w.PutString("profile", in.ec2->profile);
  w.PutString("placement_group", in.ec2->placement_group);
  w.PutString("host_id", in.ec2->host_id);
  if (in.ec2->partition_number != 0) {
    w.Key("partition_number");
    w.Int(in.ec2->partition_number);
  }
  if (in.ec2->detailed_monitoring) {
    w.Key("monitoring");
    w.String("enabled");
  }
  if (in.ec2->identity_credentials) {
    w.Key("identity_credentials");
    CredentialsToText(w, *in.ec2->identity_credentials);
  }
  if (!in.ec2->events.empty()) {
    w.Key("events");
    EventsToText(w, in.ec2->events);
  }
}

// A first guess at the size, so the string grows once or not at all.
size_t EstimatedTextSize(const Instance& in) {
  size_t n = 1024 + 512 * in.nics.size() + 256 * in.ssh_keys.size();
  if (in.user_data) n += (in.user_data->size() + 2) / 3 * 4;
  if (in.iam && in.iam->credentials) n += in.iam->credentials->token.size();
  if (in.guest->vendor_data) n += in.guest->vendor_data->size();
  return n;
}

}  // namespace

std::string ToJsonText(const Instance& in) {
  std::string out;
  out.reserve(EstimatedTextSize(in));
  Writer w(out);
  w.BeginObject();
  w.Key("id");
  w.String(in.id);
  w.Key("network");
  w.String(in.network);
  w.PutString("name", in.name);
  w.PutString("hostname", in.hostname);
  w.PutString("local_hostname", in.local_hostname);
  w.PutString("public_hostname", in.public_hostname);
  w.PutString("account_id", in.account_id);
  w.PutString("image_id", in.image_id);
  w.PutString("instance_type", in.instance_type);
  w.PutString("kernel_id", in.kernel_id);
  w.PutString("ramdisk_id", in.ramdisk_id);
  w.Key("launch_index");
  w.Int(in.launch_index);
  w.PutString("reservation_id", in.reservation_id);
  w.PutString("region", in.region);
  w.PutString("availability_zone", in.availability_zone);
  w.PutString("availability_zone_id", in.availability_zone_id);
  w.Key("architecture");
  w.String(in.architecture);
  PutTimeText(w, "launch_time", in.launch_time);
  if (!in.nics.empty()) {
    w.Key("nics");
    w.BeginArray();
    for (const Nic& nic : in.nics) NicToText(w, nic);
    w.EndArray();
  }
  if (!in.ssh_keys.empty()) {
    w.Key("ssh_keys");
    w.BeginArray();
    for (const SshKey& key : in.ssh_keys) {
      w.BeginObject();
      w.Key("name");
      w.String(key.name);
      w.Key("key");
      w.String(key.key);
      w.EndObject();
    }
    w.EndArray();
  }
  if (in.user_data) {
    w.Key("user_data");
    w.Base64(*in.user_data);
  }
  w.PutMap("tags", in.tags);
  if (in.iam) {
    w.Key("iam");
    w.BeginObject();
    w.Key("role");
    w.String(in.iam->name);
    w.PutString("instance_profile_arn", in.iam->instance_profile_arn);
    w.PutString("instance_profile_id", in.iam->instance_profile_id);
    if (in.iam->credentials) {
      w.Key("credentials");
      CredentialsToText(w, *in.iam->credentials);
    }
    w.EndObject();
  }
  w.PutMap("block_devices", in.block_devices);
  w.Key("metadata_options");
  w.BeginObject();
  w.Key("http_tokens");
  w.String(in.options.http_tokens == MetadataOptions::HttpTokens::kRequired ? "required"
                                                                              : "optional");
  w.Key("http_endpoint");
  w.String(in.options.http_endpoint_enabled ? "enabled" : "disabled");
  w.Key("hop_limit");
  w.Int(in.options.hop_limit);
  w.Key("instance_metadata_tags");
  w.String(in.options.tags_enabled ? "enabled" : "disabled");
  w.EndObject();
  if (*in.limits != RequestLimits{}) {
    const RequestLimits& l = *in.limits;
    w.Key("limits");
    w.BeginObject();
    for (const auto& [key, value] : {std::pair{"requests_per_second", l.requests_per_second},
                                     std::pair{"burst", l.burst},
                                     std::pair{"max_in_flight", l.max_in_flight}}) {
      if (!value) continue;
      w.Key(key);
      w.Int(*value);
    }
    w.EndObject();
  }
  GuestConfigToJsonText(in, w);  // guest configuration fields
  Ec2FieldsToText(w, in);        // EC2 fidelity fields
  w.EndObject();
  return out;
}

common::Status Validate(const Instance& instance) { return ValidateImpl(instance, CheckMode{}); }

void Normalize(Instance& instance) {
  Canonicalise(instance);
  SortNics(instance);
}

std::vector<std::string> CallerAddresses(const Instance& instance) {
  std::vector<std::string> out;
  // A static address the guest is told to configure is one it will call
  // from, even when no NIC lists it (a record with network_config only).
  // Other modes' addresses are chosen by DHCP/SLAAC, not by the record.
  ForEachCallerAddress(instance, [&out](const common::IpAddress& ip) {
    std::string text = ip.ToString();
    if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(std::move(text));
  });
  return out;
}

}  // namespace openimds::model

namespace openimds::model {

Str DefaultArchitecture() {
  static const Str* const kX86_64 = new Str(Str::Interned("x86_64"));
  return *kX86_64;
}

}  // namespace openimds::model
