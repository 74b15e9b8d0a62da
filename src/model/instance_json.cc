#include "model/instance_json.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "model/iam_json.h"
#include "model/instance_normalize.h"
#include "model/instance_validate.h"
#include "model/json_reader.h"
#include "model/json_writer.h"
#include "model/metadata_options_json.h"
#include "model/nic_json.h"
#include "model/record_part.h"
#include "model/request_limits_json.h"
#include "model/ssh_keys_json.h"
#include "model/time_json.h"
#include "model/user_data_json.h"

namespace openimds::model {
namespace {

namespace json = boost::json;
using common::Status;
using namespace json_reader;  // NOLINT: the reader toolkit

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
  // Tag values are interned, as most repeat across a fleet; the one that
  // names the instance (EC2's "Name" tag beside the record's name) is its
  // own and would cost an interned block and a table slot per instance, so
  // it shares the record's text instead.
  if (!in.name.empty()) {
    for (auto& [key, value] : in.tags) {
      if (value == in.name) value = in.name;
    }
  }
}

// A first guess at the size of ToJsonText's output, so the string grows once
// or not at all.
size_t EstimatedTextSize(const Instance& in) {
  size_t n = 1024 + 512 * in.nics.size() + 256 * in.ssh_keys.size();
  if (in.user_data) n += (in.user_data->size() + 2) / 3 * 4;
  if (in.iam && in.iam->credentials) n += in.iam->credentials->token.size();
  for (const RecordPart* part : RecordParts()) {
    if (part->text_size != nullptr) n += part->text_size(in);
  }
  return n;
}

}  // namespace

common::Result<Instance> FromJson(const json::value& v) { return FromJson(v, ParseOptions{}); }

common::Result<Instance> FromJson(const json::value& v, const ParseOptions& parse) {
  Instance in;
  PartFieldReader parts(in, parse);
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
                            {"nics",
                             [&in](const json::value& x, const Path& at) {
                               return ReadNics(x, at, in.nics);
                             }},
                            {"ssh_keys",
                             [&in](const json::value& x, const Path& at) {
                               return ReadSshKeys(x, at, in.ssh_keys);
                             }},
                            {"user_data",
                             [&in](const json::value& x, const Path& at) {
                               return ReadUserData(x, at, in.user_data);
                             }},
                            {"tags", StringMapReader(in.tags)},
                            {"iam",
                             [&in](const json::value& x, const Path& at) {
                               return ReadIam(x, at, in.iam);
                             }},
                            {"block_devices", StringMapReader(in.block_devices)},
                            {"metadata_options",
                             [&in](const json::value& x, const Path& at) {
                               return ReadMetadataOptions(x, at, in.options);
                             }},
                            {"limits",
                             [&in](const json::value& x, const Path& at) {
                               return ReadRequestLimits(x, at, in.limits);
                             }},
                        },
                        parts);
  if (!s.ok()) return s;
  if (!has_id) return Err("/id", "required");
  if (!has_network) in.network = Str::Interned("default");
  Canonicalise(in);
  if (Status v_status = ValidateRecord(in, CheckMode{.nic_order = false}); !v_status.ok()) {
    return v_status;
  }
  SortNics(in.nics);
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
  using json_writer::PutMap;
  using json_writer::PutString;
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
  SshKeysToJson(in.ssh_keys, o);
  UserDataToJson(in.user_data, o);
  PutMap(o, "tags", in.tags);
  IamToJson(in.iam, o);
  PutMap(o, "block_devices", in.block_devices);
  MetadataOptionsToJson(in.options, o);
  RequestLimitsToJson(*in.limits, o);
  for (const RecordPart* part : RecordParts()) {
    if (part->to_json != nullptr) part->to_json(in, o);
  }
  return o;
}

// ToJsonText writes the text directly, without building ToJson's tree first
// (it is on the import and store write paths). It must write exactly
// json::serialize(ToJson(x)): the same members in the same order.
// tests/model/instance_json_text_test.cc compares the two on varied records;
// a field added to ToJson is added here too.
std::string ToJsonText(const Instance& in) {
  std::string out;
  out.reserve(EstimatedTextSize(in));
  json_writer::Writer w(out);
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
  SshKeysToText(in.ssh_keys, w);
  UserDataToText(in.user_data, w);
  w.PutMap("tags", in.tags);
  IamToText(in.iam, w);
  w.PutMap("block_devices", in.block_devices);
  MetadataOptionsToText(in.options, w);
  RequestLimitsToText(*in.limits, w);
  for (const RecordPart* part : RecordParts()) {
    if (part->to_text != nullptr) part->to_text(in, w);
  }
  w.EndObject();
  return out;
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
