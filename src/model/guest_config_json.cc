#include "model/guest_config_json.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "model/devices_json.h"
#include "model/instance.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/limit_checker.h"
#include "model/network_config_json.h"
#include "model/record_part.h"

namespace openimds::model {
namespace {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

// "dedicated_cpus": an array of integers.
Status ReadIntArray(const json::value& v, const Path& at, std::vector<int>& out) {
  if (!v.is_array()) return Err(at, "expected array");
  out.clear();
  for (size_t i = 0; i < v.get_array().size(); ++i) {
    int n = 0;
    if (Status s = IntValue(v.get_array()[i], Path(at, i), n); !s.ok()) return s;
    out.push_back(n);
  }
  return Status::Ok();
}

// Any JSON object; kept as its compact serialisation.
Status ReadJsonObjectText(const json::value& v, const Path& at, std::optional<Str>& out) {
  if (!v.is_object()) return Err(at, "expected object");
  out = json::serialize(v);
  return Status::Ok();
}

// Reading one makes the group (Box::mut); CanonicaliseGuest frees it again if it
// holds only defaults.
constexpr PartField kFields[] = {
    {"network_config",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ReadNetworkConfig(v, at, in.guest.mut().network_config);
     }},
    {"devices",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ReadDevices(v, at, in.guest.mut().devices);
     }},
    {"dedicated_cpus",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ReadIntArray(v, at, in.guest.mut().dedicated_cpus);
     }},
    {"vendor_data",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return ReadJsonObjectText(v, at, in.guest.mut().vendor_data);
     }},
    {"flavours",
     [](const json::value& v, const Path& at, Instance& in, const ParseOptions&) {
       return InternedStringArray(in.flavours)(v, at);
     }},
};

// Flavour names as Flavour::Name() spells them.
bool IsFlavourName(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

// Canonical spellings (network_config's and devices'), dedicated_cpus sorted
// and unique, vendor_data in compact form.
void CanonicaliseGuest(Instance& in) {
  if (!in.guest.has_value()) return;
  GuestConfig& g = in.guest.mut();
  CanonicaliseNetworkConfig(g.network_config);
  CanonicaliseDevices(g.devices);
  std::sort(g.dedicated_cpus.begin(), g.dedicated_cpus.end());
  g.dedicated_cpus.erase(std::unique(g.dedicated_cpus.begin(), g.dedicated_cpus.end()),
                          g.dedicated_cpus.end());
  if (g.vendor_data) {
    // Compact serialisation, so equal documents compare equal.
    boost::system::error_code ec;
    json::value parsed = json::parse(g.vendor_data->view(), ec);
    if (!ec) g.vendor_data = json::serialize(parsed);
  }
  in.guest.Compact();  // "network_config": {} and the like set nothing
}

// CheckNetworkConfig, CheckDevices, dedicated_cpus non-negative, sorted and
// unique, vendor_data a JSON object in compact form, flavour names well
// formed and listed once.
Status ValidateGuest(const Instance& in) {
  if (Status s = CheckNetworkConfig(in); !s.ok()) return s;
  if (Status s = CheckDevices(in.guest->devices); !s.ok()) return s;
  for (size_t i = 0; i < in.guest->dedicated_cpus.size(); ++i) {
    const std::string at = Child("/dedicated_cpus", i);
    if (in.guest->dedicated_cpus[i] < 0) return Err(at, "negative");
    if (i > 0 && in.guest->dedicated_cpus[i - 1] >= in.guest->dedicated_cpus[i]) {
      return Err(at, "not sorted and unique (Normalize sorts)");
    }
  }
  if (in.guest->vendor_data) {
    boost::system::error_code ec;
    json::value parsed = json::parse(in.guest->vendor_data->view(), ec);
    if (ec || !parsed.is_object()) return Err("/vendor_data", "not a JSON object");
    if (json::serialize(parsed) != *in.guest->vendor_data) {
      return Err("/vendor_data", "not in compact form (Normalize rewrites it)");
    }
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < in.flavours.size(); ++i) {
    const std::string at = Child("/flavours", i);
    if (!IsFlavourName(in.flavours[i])) return Err(at, "must be 1..32 characters of [a-z0-9_-]");
    if (!seen.insert(in.flavours[i]).second) return Err(at, "listed twice");
  }
  return Status::Ok();
}

Status CheckGuestLimits(const Instance& in, const LimitChecker& c) {
  const GuestConfig& g = *in.guest;
  if (Status s = CheckNetworkConfigLimits(g.network_config, c); !s.ok()) return s;
  if (Status s = CheckDeviceLimits(g.devices, c); !s.ok()) return s;
  if (Status s = c.Count(Path("/dedicated_cpus"), g.dedicated_cpus.size()); !s.ok()) return s;
  if (g.vendor_data) {
    if (Status s = c.Bytes(Path("/vendor_data"), *g.vendor_data, Limit::kVendorDataBytes);
        !s.ok()) {
      return s;
    }
  }
  return c.TextList(Path("/flavours"), in.flavours);
}

void GuestToJson(const Instance& in, json::object& o) {
  NetworkConfigToJson(in.guest->network_config, o);
  DevicesToJson(in.guest->devices, o);
  if (!in.guest->dedicated_cpus.empty()) {
    json::array cpus;
    for (int c : in.guest->dedicated_cpus) cpus.emplace_back(c);
    o["dedicated_cpus"] = std::move(cpus);
  }
  if (in.guest->vendor_data) {
    boost::system::error_code ec;
    json::value parsed = json::parse(in.guest->vendor_data->view(), ec);
    if (!ec) o["vendor_data"] = std::move(parsed);
  }
  json_writer::PutArray(o, "flavours", in.flavours);
}

// Mirrors GuestToJson member for member (tests/model compares them).
void GuestToText(const Instance& in, json_writer::Writer& w) {
  NetworkConfigToText(in.guest->network_config, w);
  DevicesToText(in.guest->devices, w);
  if (!in.guest->dedicated_cpus.empty()) {
    w.Key("dedicated_cpus");
    w.BeginArray();
    for (int c : in.guest->dedicated_cpus) w.Int(c);
    w.EndArray();
  }
  if (in.guest->vendor_data) {
    // Written as ToJson writes it: re-serialised from a parse, and dropped
    // when it does not parse.
    boost::system::error_code ec;
    json::value parsed = json::parse(in.guest->vendor_data->view(), ec);
    if (!ec) {
      w.Key("vendor_data");
      w.Raw(json::serialize(parsed));
    }
  }
  w.PutArray("flavours", in.flavours);
}

// The static networks' addresses: the guest configures them, so it calls
// from them even when no NIC lists them. DHCP and SLAAC choose theirs.
void GuestCallerAddresses(const Instance& in, void* context,
                          void (*fn)(void* context, const common::IpAddress& ip)) {
  for (const IpNetwork& n : in.guest->network_config.networks) {
    if (n.mode != AddressMode::kStatic || n.address.empty()) continue;
    if (auto ip = common::IpAddress::Parse(
            std::string_view(n.address).substr(0, n.address.find('/')))) {
      fn(context, *ip);
    }
  }
}

// The vendor data is the one member that can be large (up to its limit).
size_t GuestTextSize(const Instance& in) {
  return in.guest->vendor_data ? in.guest->vendor_data->size() : 0;
}

}  // namespace

constinit const RecordPart kGuestConfigPart = {
    .name = "guest",
    .fields = kFields,
    .canonicalise = CanonicaliseGuest,
    .validate = ValidateGuest,
    .check_limits = CheckGuestLimits,
    .to_json = GuestToJson,
    .to_text = GuestToText,
    .text_size = GuestTextSize,
    .caller_addresses = GuestCallerAddresses,
};

}  // namespace openimds::model
