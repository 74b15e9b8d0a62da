// The EC2 category table: one row per node, with the metadata version that
// introduced it. Sources: ec2.md §1.5 (AWS instancedata-data-categories.md);
// the per-interface "since" values come from the same AWS table ([AWS]:
// 2011-01-01 for the original fields, 2016-06-30 for the IPv6 and extra-CIDR
// fields, 2020-11-01 for network-card-index).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/time_format.h"
#include "flavour/ec2/ec2_json.h"
#include "flavour/ec2/ec2_tree.h"

namespace openimds::flavour::ec2 {
namespace {

using model::Instance;
using model::Nic;
using C = RenderContext;

// The primary interface (device 0), or null.
const Nic* Device0(const Instance& instance) {
  for (const auto& nic : instance.nics) {
    if (nic.device_number == 0) return &nic;
  }
  return nullptr;
}

void First(const model::StrList& values, std::string& out) {
  if (!values.empty()) out += values.front();
}

// Multi-valued leaves are newline-separated (ec2.md §1.3).
void Lines(const model::StrList& values, std::string& out) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += '\n';
    out += values[i];
  }
}

void Int(long long value, std::string& out) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, end);
}

void Either(std::string_view preferred, std::string_view fallback, std::string& out) {
  out += preferred.empty() ? fallback : preferred;
}

// What EC2 prints when the record leaves these unset.
constexpr std::string_view kUnknown = "(unknown)";
constexpr std::string_view kNone = "none";
constexpr std::string_view kOnDemand = "on-demand";
constexpr std::string_view kDefaultProfile = "default-hvm";

// --- device-0 shortcuts at the top of meta-data ---

void LocalIpv4(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->private_ipv4s, out);
}
void PublicIpv4(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->public_ipv4s, out);
}
void Ipv6(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) First(n->ipv6s, out);
}
void Mac(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) out += n->mac;
}
void SecurityGroups(const C& c, std::string& out) {
  if (const Nic* n = Device0(*c.instance)) Lines(n->security_groups, out);
}
void LocalHostname(const C& c, std::string& out) {
  const Nic* n = Device0(*c.instance);
  Either(c.instance->local_hostname,
         n != nullptr ? std::string_view(n->local_hostname) : std::string_view(), out);
}
void Hostname(const C& c, std::string& out) {
  if (!c.instance->hostname.empty()) {
    out += c.instance->hostname;
  } else {
    LocalHostname(c, out);
  }
}
void PublicHostname(const C& c, std::string& out) {
  const Nic* n = Device0(*c.instance);
  Either(c.instance->public_hostname,
         n != nullptr ? std::string_view(n->public_hostname) : std::string_view(), out);
}

// --- IAM ---

void IamInfo(const C& c, std::string& out) {
  if (!c.instance->iam.has_value()) return;
  const model::IamRole& iam = *c.instance->iam;
  // The profile has no update time of its own in the model: the credentials'
  // LastUpdated when there are any, else the launch time.
  const model::TimePoint updated =
      iam.credentials.has_value() ? iam.credentials->last_updated : c.instance->launch_time;
  Ec2JsonObject(out)
      .String("Code", "Success")
      .String("LastUpdated", common::FormatRfc3339(updated))
      .String("InstanceProfileArn", iam.instance_profile_arn)
      .String("InstanceProfileId", iam.instance_profile_id)
      .Close();
}

bool IsSet(model::TimePoint t) { return t != model::TimePoint{}; }

// Credentials as EC2 prints them (ec2.md §1.6).
void CredentialsJson(const model::Credentials& creds, std::string& out) {
  Ec2JsonObject(out)
      .String("Code", "Success")
      .String("LastUpdated", common::FormatRfc3339(creds.last_updated))
      .String("Type", "AWS-HMAC")
      .String("AccessKeyId", creds.access_key_id)
      .String("SecretAccessKey", creds.secret_access_key)
      .String("Token", creds.token)
      .String("Expiration", common::FormatRfc3339(creds.expiration))
      .Close();
}

// Bound by iam/security-credentials/<role>. The record's credentials while
// fresh, else the provider's (app/: a credential-source command). Expired
// credentials are never served, from either source: the role stays listed
// but this leaf is absent (404), because serving stale keys would make SDKs
// cache credentials that AWS rejects, while a 404 makes them retry until new
// ones are pushed or fetched. The flavour counts each such read
// (imds_credential_reads_total{result="unavailable"}).
void IamCredentials(const C& c, std::string& out) {
  const model::IamRole& iam = *c.instance->iam;
  const model::TimePoint now = c.clock->Now();
  if (iam.credentials.has_value() && now < iam.credentials->expiration) {
    CredentialsJson(*iam.credentials, out);
    return;
  }
  if (c.credentials == nullptr) return;
  const std::shared_ptr<const model::Credentials> provided = c.credentials->Find(*c.instance);
  if (provided != nullptr && now < provided->expiration) CredentialsJson(*provided, out);
}

// identity-credentials/ec2/...: the instance identity role (ec2.md §1.5),
// "arn:aws:iam::<account>:assumed-role/aws:ec2-instance/<instance-id>".
void IdentityCredentialsInfo(const C& c, std::string& out) {
  const Instance& i = *c.instance;
  if (i.account_id.empty()) return;
  const model::TimePoint updated =
      i.ec2->identity_credentials.has_value() ? i.ec2->identity_credentials->last_updated : i.launch_time;
  Ec2JsonObject(out)
      .String("Code", "Success")
      .String("LastUpdated", common::FormatRfc3339(updated))
      .String("AccountId", i.account_id)
      .Close();
}
void IdentityCredentials(const C& c, std::string& out) {
  const auto& creds = c.instance->ec2->identity_credentials;
  if (creds.has_value() && c.clock->Now() < creds->expiration) CredentialsJson(*creds, out);
}

// --- dynamic ---

void IdentityDocument(const C& c, std::string& out) {
  const Instance& i = *c.instance;
  const Nic* n = Device0(i);
  const std::string_view private_ip = n != nullptr && !n->private_ipv4s.empty()
                                          ? std::string_view(n->private_ipv4s.front())
                                          : std::string_view();
  // Key order as EC2 prints it (ec2.md §1.6).
  Ec2JsonObject(out)
      .String("accountId", i.account_id)
      .String("architecture", i.architecture)
      .String("availabilityZone", i.availability_zone)
      .StringArrayOrNull("billingProducts", i.ec2->billing_products)
      .Null("devpayProductCodes")
      .StringArrayOrNull("marketplaceProductCodes", i.ec2->product_codes)
      .String("imageId", i.image_id)
      .String("instanceId", i.id)
      .String("instanceType", i.instance_type)
      .StringOrNull("kernelId", i.kernel_id)
      .String("pendingTime", common::FormatRfc3339(i.launch_time))
      .StringOrNull("privateIp", private_ip)
      .StringOrNull("ramdiskId", i.ramdisk_id)
      .String("region", i.region)
      .String("version", "2017-09-30")
      .Close();
}

// The signed forms sign the exact bytes IdentityDocument serves; the signer
// caches them per document, so only a changed instance is signed again.
void SignedDocument(auth::DocumentFormat format, const C& c, std::string& out) {
  if (c.signer == nullptr) return;
  std::string document;
  IdentityDocument(c, document);
  const size_t mark = out.size();
  if (common::Status s = c.signer->Append(format, document, out); !s.ok()) {
    out.resize(mark);  // absent (404) rather than a partial artifact
    common::LogError("ec2", "identity document signing failed: " + s.ToString());
  }
}

// --- events (ec2.md §1.5, §1.6): every one is absent (404) until it is due ---

// EC2 gives two minutes' notice of a Spot interruption.
constexpr std::chrono::minutes kSpotNotice{2};

const model::SpotInterruption* DueSpot(const C& c) {
  const auto& spot = c.instance->ec2->events.spot;
  if (!spot.has_value()) return nullptr;
  const model::TimePoint due =
      IsSet(spot->notice_time) ? spot->notice_time : spot->time - kSpotNotice;
  return c.clock->Now() >= due ? &*spot : nullptr;
}

// Compact, as AWS documents it: {"action": "terminate", "time": "2017-09-18T08:22:00Z"}
void SpotInstanceAction(const C& c, std::string& out) {
  const model::SpotInterruption* spot = DueSpot(c);
  if (spot == nullptr) return;
  out += "{\"action\": ";
  AppendJsonString(spot->action, out);
  out += ", \"time\": ";
  AppendJsonString(common::FormatRfc3339(spot->time), out);
  out += '}';
}

// The legacy item: only for a termination (stop and hibernate announce
// themselves through instance-action alone) [INF].
void SpotTerminationTime(const C& c, std::string& out) {
  const model::SpotInterruption* spot = DueSpot(c);
  if (spot != nullptr && spot->action == "terminate") out += common::FormatRfc3339(spot->time);
}

void Rebalance(const C& c, std::string& out) {
  const auto& notice = c.instance->ec2->events.rebalance_notice;
  if (!notice.has_value() || c.clock->Now() < *notice) return;
  out += "{\"noticeTime\": ";
  AppendJsonString(common::FormatRfc3339(*notice), out);
  out += '}';
}

// Scheduled events are listed once their notice is due; an active event
// moves to the history as completed once its NotAfter has passed, canceled
// and completed ones are there from the start. Both leaves always exist
// (from 2018-08-17) and are "[ ]" without events: agents such as
// aws-node-termination-handler poll scheduled and treat anything but 200 as
// an error.
void MaintenanceEvents(const C& c, bool history, std::string& out) {
  using State = model::ScheduledEvent::State;
  const model::TimePoint now = c.clock->Now();
  out += '[';
  bool first = true;
  for (const model::ScheduledEvent& ev : c.instance->ec2->events.scheduled) {
    if (IsSet(ev.notice_time) && now < ev.notice_time) continue;
    State state = ev.state;
    if (state == State::kActive && IsSet(ev.not_after) && now >= ev.not_after) {
      state = State::kCompleted;
    }
    if ((state != State::kActive) != history) continue;
    out += first ? " " : ", ";
    first = false;
    std::string description;
    if (state == State::kCompleted) description = "[Completed] ";
    if (state == State::kCanceled) description = "[Canceled] ";
    description += ev.description;
    Ec2JsonObject o(out);
    o.String("NotBefore", common::FormatEc2EventTime(ev.not_before))
        .String("Code", ev.code)
        .String("Description", description)
        .String("EventId", ev.id);
    if (IsSet(ev.not_after)) o.String("NotAfter", common::FormatEc2EventTime(ev.not_after));
    if (IsSet(ev.not_before_deadline)) {
      o.String("NotBeforeDeadline", common::FormatEc2EventTime(ev.not_before_deadline));
    }
    o.String("State", state == State::kActive      ? "active"
                      : state == State::kCompleted ? "completed"
                                                   : "canceled");
    o.Close();
  }
  out += " ]";
}

// The last lifecycle state that is due.
void TargetLifecycleState(const C& c, std::string& out) {
  const model::TimePoint now = c.clock->Now();
  const model::Str* state = nullptr;
  for (const auto& t : c.instance->ec2->events.lifecycle) {
    if (t.at <= now) state = &t.state;
  }
  if (state != nullptr) out += *state;
}

// --- network/interfaces/macs/<mac>/ (ctx.nic bound) ---

void NicOwner(const C& c, std::string& out) {
  Either(c.nic->owner_id, c.instance->account_id, out);
}
void NicVpcIpv4Cidrs(const C& c, std::string& out) {
  if (c.nic->vpc_ipv4_cidrs.empty()) {
    out += c.nic->vpc_ipv4_cidr;  // the primary is always one of them
  } else {
    Lines(c.nic->vpc_ipv4_cidrs, out);
  }
}

// clang-format off
const NodeSpec kCategories[] = {
    {"user-data", "1.0",
     [](const C& c, std::string& o) { if (c.instance->user_data) o += *c.instance->user_data; },
     KeySource::kNone, kOctetStream},

    // Detailed monitoring; version unknown, served with the rest of dynamic/ [INF].
    {"dynamic/fws/instance-monitoring", "2009-04-04",
     [](const C& c, std::string& o) {
       o += c.instance->ec2->detailed_monitoring ? "enabled" : "disabled";
     }},
    {"dynamic/instance-identity/document", "2009-04-04", IdentityDocument},
    // Present when the operator configured signing keys. rsa2048's first
    // version is not documented; it is served wherever the document is, so
    // no client that lists the directory misses it [INF].
    {"dynamic/instance-identity/pkcs7", "2009-04-04",
     [](const C& c, std::string& o) { SignedDocument(auth::DocumentFormat::kPkcs7, c, o); }},
    {"dynamic/instance-identity/rsa2048", "2009-04-04",
     [](const C& c, std::string& o) { SignedDocument(auth::DocumentFormat::kRsa2048, c, o); }},
    {"dynamic/instance-identity/signature", "2009-04-04",
     [](const C& c, std::string& o) { SignedDocument(auth::DocumentFormat::kSignature, c, o); }},

    {"meta-data/ami-id", "1.0", [](const C& c, std::string& o) { o += c.instance->image_id; }},
    {"meta-data/ami-launch-index", "1.0",
     [](const C& c, std::string& o) { Int(c.instance->launch_index, o); }},
    // "(unknown)" is what EC2 says for EBS-backed AMIs.
    {"meta-data/ami-manifest-path", "1.0",
     [](const C& c, std::string& o) { Either(c.instance->ec2->ami_manifest_path, kUnknown, o); }},
    {"meta-data/ancestor-ami-ids", "2007-10-10",
     [](const C& c, std::string& o) { Lines(c.instance->ec2->ancestor_ami_ids, o); }},
    {"meta-data/autoscaling/target-lifecycle-state", "2021-07-15", TargetLifecycleState},
    {"meta-data/block-device-mapping/*", "2007-12-15",
     [](const C& c, std::string& o) { o += *c.value; }, KeySource::kBlockDevice},
    {"meta-data/events/maintenance/history", "2018-08-17",
     [](const C& c, std::string& o) { MaintenanceEvents(c, /*history=*/true, o); }},
    {"meta-data/events/maintenance/scheduled", "2018-08-17",
     [](const C& c, std::string& o) { MaintenanceEvents(c, /*history=*/false, o); }},
    {"meta-data/events/recommendations/rebalance", "2020-10-27", Rebalance},
    {"meta-data/hostname", "1.0", Hostname},
    {"meta-data/iam/info", "2012-01-12", IamInfo},
    {"meta-data/iam/security-credentials/*", "2012-01-12", IamCredentials, KeySource::kIamRole,
     kCredentialRead},
    {"meta-data/identity-credentials/ec2/info", "2018-05-23", IdentityCredentialsInfo},
    {"meta-data/identity-credentials/ec2/security-credentials/ec2-instance", "2018-05-23",
     IdentityCredentials, KeySource::kNone, kCredentialRead},
    {"meta-data/instance-action", "2008-09-01",
     [](const C& c, std::string& o) { Either(c.instance->ec2->instance_action, kNone, o); }},
    {"meta-data/instance-id", "1.0", [](const C& c, std::string& o) { o += c.instance->id; }},
    {"meta-data/instance-life-cycle", "2019-10-01",
     [](const C& c, std::string& o) { Either(c.instance->ec2->instance_life_cycle, kOnDemand, o); }},
    {"meta-data/instance-type", "2007-08-29",
     [](const C& c, std::string& o) { o += c.instance->instance_type; }},
    {"meta-data/ipv6", "2021-01-03", Ipv6},
    {"meta-data/kernel-id", "2008-02-01",
     [](const C& c, std::string& o) { o += c.instance->kernel_id; }},
    {"meta-data/local-hostname", "2007-01-19", LocalHostname},
    {"meta-data/local-ipv4", "1.0", LocalIpv4},
    {"meta-data/mac", "2011-01-01", Mac},

    {"meta-data/network/interfaces/macs/*", "2011-01-01", nullptr, KeySource::kNicMac},
    {"meta-data/network/interfaces/macs/*/device-number", "2011-01-01",
     [](const C& c, std::string& o) { Int(c.nic->device_number, o); }},
    {"meta-data/network/interfaces/macs/*/interface-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->interface_id; }},
    {"meta-data/network/interfaces/macs/*/ipv4-associations/*", "2011-01-01",
     [](const C& c, std::string& o) { o += *c.value; }, KeySource::kIpv4Association},
    // Prefix delegation (2021); its metadata version is not documented [INF].
    {"meta-data/network/interfaces/macs/*/ipv4-prefix", "2021-07-15",
     [](const C& c, std::string& o) { Lines(c.nic->ipv4_prefixes, o); }},
    {"meta-data/network/interfaces/macs/*/ipv6-prefix", "2021-07-15",
     [](const C& c, std::string& o) { Lines(c.nic->ipv6_prefixes, o); }},
    {"meta-data/network/interfaces/macs/*/ipv6s", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->ipv6s, o); }},
    {"meta-data/network/interfaces/macs/*/local-hostname", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->local_hostname; }},
    {"meta-data/network/interfaces/macs/*/local-ipv4s", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->private_ipv4s, o); }},
    {"meta-data/network/interfaces/macs/*/mac", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->mac; }},
    {"meta-data/network/interfaces/macs/*/network-card-index", "2020-11-01",
     [](const C& c, std::string& o) { Int(c.nic->network_card_index, o); }},
    {"meta-data/network/interfaces/macs/*/owner-id", "2011-01-01", NicOwner},
    {"meta-data/network/interfaces/macs/*/public-hostname", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->public_hostname; }},
    {"meta-data/network/interfaces/macs/*/public-ipv4s", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->public_ipv4s, o); }},
    {"meta-data/network/interfaces/macs/*/security-group-ids", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->security_group_ids, o); }},
    {"meta-data/network/interfaces/macs/*/security-groups", "2011-01-01",
     [](const C& c, std::string& o) { Lines(c.nic->security_groups, o); }},
    {"meta-data/network/interfaces/macs/*/subnet-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->subnet_id; }},
    {"meta-data/network/interfaces/macs/*/subnet-ipv4-cidr-block", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->subnet_ipv4_cidr; }},
    {"meta-data/network/interfaces/macs/*/subnet-ipv6-cidr-blocks", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->subnet_ipv6_cidrs, o); }},
    {"meta-data/network/interfaces/macs/*/vpc-id", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->vpc_id; }},
    {"meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-block", "2011-01-01",
     [](const C& c, std::string& o) { o += c.nic->vpc_ipv4_cidr; }},
    {"meta-data/network/interfaces/macs/*/vpc-ipv4-cidr-blocks", "2016-06-30", NicVpcIpv4Cidrs},
    {"meta-data/network/interfaces/macs/*/vpc-ipv6-cidr-blocks", "2016-06-30",
     [](const C& c, std::string& o) { Lines(c.nic->vpc_ipv6_cidrs, o); }},

    {"meta-data/placement/availability-zone", "2008-02-01",
     [](const C& c, std::string& o) { o += c.instance->availability_zone; }},
    {"meta-data/placement/availability-zone-id", "2019-10-01",
     [](const C& c, std::string& o) { o += c.instance->availability_zone_id; }},
    {"meta-data/placement/group-name", "2020-08-24",
     [](const C& c, std::string& o) { o += c.instance->ec2->placement_group; }},
    {"meta-data/placement/host-id", "2020-08-24",
     [](const C& c, std::string& o) { o += c.instance->ec2->host_id; }},
    {"meta-data/placement/partition-number", "2020-08-24",
     [](const C& c, std::string& o) {
       if (c.instance->ec2->partition_number > 0) Int(c.instance->ec2->partition_number, o);
     }},
    {"meta-data/placement/region", "2020-08-24",
     [](const C& c, std::string& o) { o += c.instance->region; }},
    {"meta-data/product-codes", "2007-03-01",
     [](const C& c, std::string& o) { Lines(c.instance->ec2->product_codes, o); }},
    // In the AWS docs' top-level listing but not in the category table; its
    // first version is not documented [INF].
    {"meta-data/profile", "1.0",
     [](const C& c, std::string& o) { Either(c.instance->ec2->profile, kDefaultProfile, o); }},
    {"meta-data/public-hostname", "2007-01-19", PublicHostname},
    {"meta-data/public-ipv4", "2007-01-19", PublicIpv4},
    {"meta-data/public-keys/*", "1.0", nullptr, KeySource::kPublicKeyIndex},
    {"meta-data/public-keys/*/openssh-key", "1.0",
     [](const C& c, std::string& o) { o += c.instance->ssh_keys[c.key_index].key; }},
    {"meta-data/ramdisk-id", "2007-10-10",
     [](const C& c, std::string& o) { o += c.instance->ramdisk_id; }},
    {"meta-data/reservation-id", "1.0",
     [](const C& c, std::string& o) { o += c.instance->reservation_id; }},
    {"meta-data/security-groups", "1.0", SecurityGroups},
    {"meta-data/services/domain", "2014-02-25",
     [](const C& c, std::string& o) { o += DomainForRegion(c.instance->region); }},
    {"meta-data/services/partition", "2015-10-20",
     [](const C& c, std::string& o) { o += PartitionForRegion(c.instance->region); }},
    {"meta-data/spot/instance-action", "2016-11-15", SpotInstanceAction},
    {"meta-data/spot/termination-time", "2014-11-05", SpotTerminationTime},
    // Tag values may be empty in AWS; an empty tag is still a tag.
    {"meta-data/tags/instance/*", "2021-03-23",
     [](const C& c, std::string& o) { o += *c.value; }, KeySource::kTagKey, kEmptyIsValue},
};

// Nova's EC2 tree (nova/api/metadata/base.py get_ec2_metadata; openstack.md
// §1.4): its keys, from the version Nova's _check_version gates them at,
// which differs from AWS's for kernel-id (2007-12-15, not 2008-02-01) and
// ramdisk-id (2007-12-15, not 2007-10-10). Nova has kernel-id and
// ramdisk-id only when set, public-keys only with a key and user-data only
// when there is some; every other key is in its dict unconditionally, so
// here it is kEmptyIsValue (kAlways): listed and 200 even when the record
// leaves it empty (Nova prints '' for an empty value, and cloud-init retries
// every listed key that is not 200). block-device-mapping/ is always a dict
// in Nova, so always listed.
constexpr uint8_t kAlways = kEmptyIsValue;
const KeySetRow kNovaKeySet[] = {
    {"user-data", "1.0"},
    {"meta-data/ami-id", "1.0", kAlways},
    {"meta-data/ami-launch-index", "1.0", kAlways},
    {"meta-data/ami-manifest-path", "1.0", kAlways},
    {"meta-data/block-device-mapping/*", "2007-12-15", kListedWithoutKeys},
    {"meta-data/hostname", "1.0", kAlways},
    {"meta-data/instance-action", "2008-09-01", kAlways},
    {"meta-data/instance-id", "1.0", kAlways},
    {"meta-data/instance-type", "2007-08-29", kAlways},
    {"meta-data/kernel-id", "2007-12-15"},
    {"meta-data/local-hostname", "2007-01-19", kAlways},
    {"meta-data/local-ipv4", "1.0", kAlways},
    {"meta-data/placement/availability-zone", "2008-02-01", kAlways},
    {"meta-data/public-hostname", "2007-01-19", kAlways},
    {"meta-data/public-ipv4", "2007-01-19", kAlways},
    {"meta-data/public-keys/*", "1.0"},
    {"meta-data/public-keys/*/openssh-key", "1.0"},
    {"meta-data/ramdisk-id", "2007-12-15"},
    {"meta-data/reservation-id", "1.0", kAlways},
    {"meta-data/security-groups", "1.0", kAlways},
};
// clang-format on

}  // namespace

std::span<const NodeSpec> Ec2Categories() { return kCategories; }

Ec2TreeOptions TreeOptionsFor(Ec2Dialect dialect) {
  Ec2TreeOptions options;
  if (dialect == Ec2Dialect::kNova) {
    options.key_set = kNovaKeySet;
    options.slash_root_directories = true;
  }
  return options;
}

}  // namespace openimds::flavour::ec2
