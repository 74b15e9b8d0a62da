// Fuzz target: the instance record's JSON mapping and the admin API's JSON
// merge patch.
//
// Input: JSON text. Without a separator line, the input is both an instance
// record and a merge patch applied to the record of docs/instance.md. With
// one ("\n---\n"), the text before it is the target document (and, if it is
// a valid record, the instance patched) and the text after it the patch.
//
// Invariants (each a FUZZ_CHECK):
//   record: whatever model::FromJson accepts passes Validate, is unchanged by
//     Normalize, and survives the round trip: FromJson(ToJson(x)) == x and
//     ToJsonText is the same text again. FromJsonText never throws.
//   merge patch (RFC 7396), for any two JSON documents: a patch that is not
//     an object is the result; otherwise the result is an object in which
//     every null member of the patch is absent, every object member is the
//     target's member merged with it (recursively, same rules), every other
//     member equals the patch's, and every member the patch does not name is
//     the target's, unchanged. Applying the patch again changes nothing.
//   PATCH as the admin API runs it: FromJson(MergePatch(ToJson(record),
//     patch)) is an error or a record that passes the record invariants.

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "admin/merge_patch.h"
#include "common/time_format.h"
#include "fuzz/fuzz_check.h"
#include "model/instance_json.h"

namespace openimds::fuzz {
namespace {

namespace json = boost::json;

// The full example of docs/instance.md.
constexpr std::string_view kDocRecord = R"({
  "id": "i-0123456789abcdef0", "network": "default", "name": "demo",
  "hostname": "ip-10-0-0-5.ec2.internal", "local_hostname": "ip-10-0-0-5.ec2.internal",
  "public_hostname": "ec2-203-0-113-25.compute-1.amazonaws.com",
  "account_id": "123456789012", "image_id": "ami-0abcdef1234567890",
  "instance_type": "t3.micro", "launch_index": 0, "reservation_id": "r-0123456789abcdef0",
  "region": "us-east-1", "availability_zone": "us-east-1a", "availability_zone_id": "use1-az4",
  "architecture": "x86_64", "launch_time": "2026-11-25T13:00:00Z",
  "nics": [{"mac": "02:00:00:00:00:01", "device_number": 0, "network_card_index": 0,
            "interface_id": "eni-0123456789abcdef0", "owner_id": "123456789012",
            "local_hostname": "ip-10-0-0-5.ec2.internal",
            "public_hostname": "ec2-203-0-113-25.compute-1.amazonaws.com",
            "private_ipv4s": ["10.0.0.5", "10.0.0.6"], "public_ipv4s": ["203.0.113.25"],
            "ipv6s": ["2001:db8::5"], "subnet_id": "subnet-0123456789abcdef0",
            "subnet_ipv4_cidr": "10.0.0.0/24", "subnet_ipv6_cidrs": ["2001:db8::/64"],
            "vpc_id": "vpc-0123456789abcdef0", "vpc_ipv4_cidr": "10.0.0.0/16",
            "vpc_ipv4_cidrs": ["10.0.0.0/16"], "vpc_ipv6_cidrs": ["2001:db8::/56"],
            "security_groups": ["default"], "security_group_ids": ["sg-0123456789abcdef0"]}],
  "ssh_keys": [{"name": "demo", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoDemoDemoDemoDemoDemoDemoDemoDemoDemo demo"}],
  "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogZGVtbwo=",
  "tags": {"Name": "demo", "team": "platform"},
  "iam": {"role": "demo-role",
          "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/demo",
          "instance_profile_id": "AIPAABCDEFGHIJKLMNOPQ",
          "credentials": {"access_key_id": "ASIAABCDEFGHIJKLMNOP",
                          "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                          "token": "IQoJb3JpZ2luX2VjEXAMPLETOKEN",
                          "expiration": "2026-11-25T19:00:00Z",
                          "last_updated": "2026-11-25T13:00:00Z"}},
  "block_devices": {"ami": "/dev/xvda", "root": "/dev/xvda", "ebs1": "sdb"},
  "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled", "hop_limit": 2,
                       "instance_metadata_tags": "enabled"}
})";

// A fixed "now" for {"in_seconds": N} event times, so a run is repeatable.
model::ParseOptions Now() {
  static const model::ParseOptions options{*common::ParseRfc3339("2026-11-25T12:00:00Z")};
  return options;
}

std::optional<json::value> Parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

// The record invariants for an accepted record `x`.
void CheckRecord(const model::Instance& x, std::string_view context) {
  const std::string where(context);
  const common::Status valid = model::Validate(x);
  FUZZ_CHECK(valid.ok(), where + ": accepted but invalid: " + valid.ToString());
  model::Instance normalized = x;
  model::Normalize(normalized);
  FUZZ_CHECK(normalized == x, where + ": Normalize changed an accepted record");
  const std::string text = model::ToJsonText(x);
  auto again = model::FromJson(json::parse(text), Now());
  FUZZ_CHECK(again.ok(), where + ": ToJsonText output refused: " + again.status().ToString() +
                             "\n" + Printable(text));
  FUZZ_CHECK(*again == x, where + ": FromJson(ToJson(x)) != x\n" + Printable(text));
  FUZZ_CHECK(model::ToJsonText(*again) == text, where + ": ToJsonText not stable");
}

// RFC 7396's outcome, member by member (see the top of this file).
void CheckMerged(const json::value& target, const json::value& patch, const json::value& result) {
  const json::object* p = patch.if_object();
  if (p == nullptr) {
    FUZZ_CHECK(result == patch, "a non-object patch is not the result");
    return;
  }
  const json::object* r = result.if_object();
  FUZZ_CHECK(r != nullptr, "an object patch gave a non-object");
  const json::object* t = target.if_object();
  for (const auto& member : *p) {
    const json::value* got = r->if_contains(member.key());
    if (member.value().is_null()) {
      FUZZ_CHECK(got == nullptr, "a null member of the patch was not removed");
      continue;
    }
    FUZZ_CHECK(got != nullptr, "a member of the patch is missing from the result");
    const json::value* before = t != nullptr ? t->if_contains(member.key()) : nullptr;
    CheckMerged(before != nullptr ? *before : json::value(), member.value(), *got);
  }
  if (t != nullptr) {
    for (const auto& member : *t) {
      if (p->contains(member.key())) continue;
      const json::value* got = r->if_contains(member.key());
      FUZZ_CHECK(got != nullptr && *got == member.value(),
                 "a member the patch does not name changed");
    }
  }
  for (const auto& member : *r) {
    FUZZ_CHECK(p->contains(member.key()) || (t != nullptr && t->contains(member.key())),
               "the result has a member neither document has");
  }
}

void CheckPatch(const json::value& target, const json::value& patch) {
  const json::value result = admin::MergePatch(target, patch);
  CheckMerged(target, patch, result);
  FUZZ_CHECK(admin::MergePatch(result, patch) == result, "applying a patch twice changed more");
}

}  // namespace
}  // namespace openimds::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace openimds;
  using namespace openimds::fuzz;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // The text form, with its own parser (errors as "invalid JSON ... at offset").
  (void)model::FromJsonText(input);

  std::string_view target_text = kDocRecord;
  std::string_view patch_text = input;
  const size_t separator = input.find("\n---\n");
  if (separator != std::string_view::npos) {
    target_text = input.substr(0, separator);
    patch_text = input.substr(separator + 5);
  }

  // Each side that parses as a record keeps the record invariants.
  const std::optional<json::value> whole = Parse(input);
  if (whole) {
    auto record = model::FromJson(*whole, Now());
    if (record.ok()) CheckRecord(*record, "input");
  }
  const std::optional<json::value> target = Parse(target_text);
  const std::optional<json::value> patch = Parse(patch_text);
  if (!target || !patch) return 0;
  CheckPatch(*target, *patch);

  // The admin API's PATCH: the stored record, as JSON, merged with the patch.
  auto base = model::FromJson(*target, Now());
  if (!base.ok()) return 0;
  CheckRecord(*base, "target");
  auto patched = model::FromJson(admin::MergePatch(model::ToJson(*base), *patch), Now());
  if (patched.ok()) CheckRecord(*patched, "patched");
  return 0;
}
