#include "model/ip_text.h"

#include <string>

#include "common/ip_address.h"
#include "model/canonical_ip.h"
#include "model/text_checks.h"

namespace openimds::model {

using common::Status;
using json_reader::Err;
using json_reader::Path;

void CanonicalAddresses(StrList& list) {
  for (auto& a : list) {
    if (IsCanonicalIpv4(a)) continue;
    if (auto ip = common::IpAddress::Parse(a)) {
      std::string canonical = ip->ToString();
      if (canonical != a.view()) a = canonical;  // an equal text stays shared
    }
  }
}

void CanonicalCidr(Str& c) {
  if (IsCanonicalIpv4Cidr(c)) return;
  if (auto cidr = common::Cidr::Parse(c)) {
    std::string canonical = cidr->ToString();
    if (canonical != c.view()) c = canonical;  // an equal text stays shared (interned, packed)
  }
}

void CanonicalCidrs(StrList& list) {
  for (auto& c : list) CanonicalCidr(c);
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

}  // namespace openimds::model
