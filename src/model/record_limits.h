#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "common/status.h"
#include "model/instance.h"

namespace openimds::model {

// The size limits of one instance record: how long a text may be and how
// many entries a list may hold. The admin API refuses a record over any of
// them with PayloadTooLarge (HTTP 413) whose message starts with the JSON
// pointer of the offender: "/tags: 300 tags; the limit is 256",
// "/name: 52428800 bytes; the limit is 4096".
//
// Limits are the admin API's policy for what it accepts, not part of what a
// record is: Validate() and the store do not check them, so a record that an
// older version stored over a limit still loads and is served, and the next
// write to it must bring it within the limits.
//
// The table below is the one place the limits live; docs/instance.md,
// "Limits", is the same table in prose (tests/model/record_limits_test.cc
// checks that every row is there with its default).
enum class Limit {
  kRecordBytes,      // one record's JSON text as sent
  kUserDataBytes,    // user_data, decoded
  kTextBytes,        // every text field without a limit of its own
  kHostnameBytes,    // hostname fields
  kCredentialBytes,  // access key, secret key, session token
  kVendorDataBytes,  // vendor_data (compact JSON)
  kSshKeys,          // entries of ssh_keys
  kSshKeyBytes,      // one ssh_keys[].key
  kTags,             // entries of tags
  kTagKeyChars,      // one tag key
  kTagValueChars,    // one tag value
  kNics,             // entries of nics
  kAddressesPerNic,  // entries of each address or CIDR list of one NIC
  kBlockDevices,     // entries of block_devices
  kListItems,        // entries of every other list or map
};
inline constexpr size_t kLimitCount = 15;

struct LimitInfo {
  Limit limit;
  std::string_view name;  // metric label and the docs' name: "tags"
  size_t default_value;
  // What the value counts, as messages say it: "bytes", "characters", or the
  // entries ("tags", "keys", ...).
  std::string_view unit;
  // The most an operator may configure; 0: fixed.
  size_t configurable_max = 0;
};

// In Limit order. Each value carries its reason.
inline constexpr LimitInfo kLimits[kLimitCount] = {
    // A PUT or PATCH body, or one line of an import, checked before it is
    // parsed: a typical record is 1-4 KiB, and 1 MiB also holds the largest
    // user-data (64 KiB, base64 and wrapped) with every list near its limit.
    {Limit::kRecordBytes, "record_bytes", 1024 * 1024, "bytes"},
    // EC2's limit on raw user-data is 16 KiB. Configurable (serve
    // --max-user-data-bytes) up to 64 KiB, OpenStack's and Azure's limit, the
    // most a record has ever been able to hold (older versions refuse more).
    {Limit::kUserDataBytes, "user_data_bytes", 16 * 1024, "bytes", 64 * 1024},
    // Names, identifiers, ARNs, descriptions: far beyond any cloud's own
    // (EC2 tag values 256, IAM ARNs 2048), small enough that a record stays small.
    {Limit::kTextBytes, "text_bytes", 4096, "bytes"},
    // A DNS name is at most 253 characters (255 octets on the wire).
    {Limit::kHostnameBytes, "hostname_bytes", 255, "bytes"},
    // STS session tokens have no documented maximum and have grown over the
    // years (a few KiB today); 16 KiB leaves room.
    {Limit::kCredentialBytes, "credential_bytes", 16 * 1024, "bytes"},
    // Per-instance OpenStack vendor data: configuration, not payloads.
    {Limit::kVendorDataBytes, "vendor_data_bytes", 64 * 1024, "bytes"},
    // Clouds attach one key pair (EC2, OpenStack); a private cloud may list a
    // team's keys. 100 is generous for either.
    {Limit::kSshKeys, "ssh_keys", 100, "keys"},
    // An RSA-16384 public key is ~2.8 KiB of text; OpenSSH certificates with
    // many principals are larger.
    {Limit::kSshKeyBytes, "ssh_key_bytes", 16 * 1024, "bytes"},
    // EC2 allows 50 tags per resource; a private cloud labels more (Kubernetes
    // node labels and the like), so 256.
    {Limit::kTags, "tags", 256, "tags"},
    // EC2's tag limits, in characters (Unicode code points).
    {Limit::kTagKeyChars, "tag_key_chars", 128, "characters"},
    {Limit::kTagValueChars, "tag_value_chars", 256, "characters"},
    // device_number is 0..127 and unique, so no record can have more.
    {Limit::kNics, "nics", 128, "NICs"},
    // EC2 allows up to 50 private IPv4 and 50 IPv6 addresses per interface.
    {Limit::kAddressesPerNic, "addresses_per_nic", 64, "entries"},
    // A guest rarely has more than a few dozen volumes.
    {Limit::kBlockDevices, "block_devices", 128, "block devices"},
    // Security groups, CIDR lists, flavours, network_config entries, devices,
    // pinned CPUs (the largest guests have several hundred), events: every
    // other list.
    {Limit::kListItems, "list_items", 1024, "entries"},
};

const LimitInfo& InfoFor(Limit limit);

// The limits in force: every value starts at its default.
class RecordLimits {
 public:
  RecordLimits();
  size_t operator[](Limit limit) const { return values_[static_cast<size_t>(limit)]; }
  // InvalidArgument when the limit is fixed, or `value` is 0 or above its
  // configurable_max (the message names the limit and the range).
  common::Status Set(Limit limit, size_t value);

 private:
  std::array<size_t, kLimitCount> values_;
};

// OK, or PayloadTooLarge naming the JSON pointer, the size and the limit, for
// the first field over a limit in document order (a list's length before its
// entries), except that the top-level texts under kTextBytes come before the
// hostnames and a NIC's part fields (record_part.h) before its security
// groups. Then the record's parts, in their order. `exceeded`, when non-null,
// is set to the limit that refused. Reads every field once and allocates only
// for the message.
common::Status CheckLimits(const Instance& instance, const RecordLimits& limits,
                           Limit* exceeded = nullptr);

// OK, or PayloadTooLarge "/: N bytes; the limit is M ..." when one record's
// JSON text of `bytes` exceeds Limit::kRecordBytes: for callers that hold the
// text, to refuse it before parsing.
common::Status CheckRecordBytes(size_t bytes, const RecordLimits& limits);

}  // namespace openimds::model
