#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/document_signer.h"
#include "common/clock.h"
#include "flavour/ec2/credential_provider.h"
#include "flavour/ec2/ec2_versions.h"
#include "model/instance.h"

namespace openimds::flavour::ec2 {

// What one request's walk through the tree has bound, plus what every value
// needs. Lives on the stack for one request.
struct RenderContext {
  const model::Instance* instance = nullptr;
  const common::Clock* clock = nullptr;
  int version = kLatestVersion;  // index into kVersions
  // Optional collaborators (null: the leaves that need them are absent).
  const auth::DocumentSigner* signer = nullptr;     // instance-identity signatures
  const CredentialProvider* credentials = nullptr;  // role credentials not in the record
  // Bound by '*' segments on the way down:
  const model::Nic* nic = nullptr;     // network/interfaces/macs/<mac>
  std::string_view key;                // block device name, tag key, role name, public IP
  const model::Str* value = nullptr;   // the block device's, tag's or association's value
  size_t key_index = 0;                // public-keys/<n>
};

// Where the keys of a '*' node come from.
enum class KeySource : uint8_t {
  kNone,
  kNicMac,          // one per NIC, by MAC
  kBlockDevice,     // Instance::block_devices
  kPublicKeyIndex,  // 0..n-1 over ssh_keys; listed as "<n>=<name>"
  kTagKey,          // Instance::tags, only when options.tags_enabled
  kIamRole,         // the one role, when Instance::iam is set
  kIpv4Association,  // the bound NIC's ipv4_associations (public IPv4 -> private IPv4)
};

// Appends a leaf's value. Appending nothing means "absent" (404).
using LeafFn = void (*)(const RenderContext& ctx, std::string& out);

enum NodeFlag : uint8_t {
  kOctetStream = 1 << 0,   // served as application/octet-stream instead of text/plain
  kEmptyIsValue = 1 << 1,  // an empty value is served (200, empty body), not a 404
  kCredentialRead = 1 << 2,  // reading it hands out credentials (counted per read)
  // On a "*" row: its directory is present (listed, 200 with an empty
  // listing) even when the instance has no such keys. Nova always lists
  // block-device-mapping/.
  kListedWithoutKeys = 1 << 3,
};

// One row of a tree table.
struct NodeSpec {
  // Path from the version root, e.g. "meta-data/placement/region". A "*"
  // segment stands for one key from `keys` and must be declared by its own
  // row before rows below it. Named directories are created implicitly.
  std::string_view path;
  // First metadata version that serves the node (ec2.md §1.5 "since").
  std::string_view since = "1.0";
  LeafFn leaf = nullptr;              // null: a directory
  KeySource keys = KeySource::kNone;  // only for "*" rows
  uint8_t flags = 0;                  // NodeFlag bits
};

// A dialect's view of the category table (Ec2Dialect): which rows exist, from
// which version, with which extra NodeFlags. The rows' values still come from
// the table's LeafFns, so every dialect shares one renderer.
struct KeySetRow {
  std::string_view path;   // a NodeSpec path, e.g. "meta-data/kernel-id"
  std::string_view since;  // first version that serves it in this dialect
  uint8_t flags = 0;       // OR-ed into the NodeSpec's flags
};

// How one Ec2Tree is cut from the table.
struct Ec2TreeOptions {
  // The rows to serve; empty: every row of the table, as written there.
  std::span<const KeySetRow> key_set;
  // The version root lists directories with '/' too ("meta-data/\nuser-data",
  // as Nova's ec2_md_print), where EC2 lists "dynamic\nmeta-data\nuser-data".
  bool slash_root_directories = false;
};

// A metadata tree built once from a table of NodeSpecs. Directory listings
// are derived from the table and the instance, never written by hand:
//  - a node is visible in a version at or after its `since`;
//  - a leaf is present when its value is non-empty (or kEmptyIsValue);
//  - a directory is present when it has a present child, so directories
//    with nothing in them are absent (404), not empty;
//  - listings are the present children in byte order of their names, one per
//    line, no trailing newline; directories end in '/' except directly under
//    the version root (EC2 lists "dynamic", "meta-data", "user-data")
//    unless Ec2TreeOptions::slash_root_directories.
// Immutable after construction; safe for concurrent use.
class Ec2Tree {
 public:
  struct Node {
    std::string_view name;  // "*" for keyed nodes; "" for the version root
    int since = 0;          // index into kVersions
    LeafFn leaf = nullptr;
    KeySource keys = KeySource::kNone;
    uint8_t flags = 0;
    std::vector<uint16_t> children;  // named children, sorted by name
    int keyed_child = -1;            // the "*" child; a directory has it or named children

    bool is_directory() const { return leaf == nullptr; }
  };

  // Aborts on a malformed table (unknown version, undeclared "*" parent,
  // duplicate path, "*" beside named children, a key-set row naming no table
  // row): the tables are code, and a broken one must fail the first test, not
  // a guest's request.
  explicit Ec2Tree(std::span<const NodeSpec> specs, Ec2TreeOptions options = {});

  // The version root ("/<version>/").
  const Node& root() const { return nodes_.front(); }

  // Walks `segments` below the version root, binding keyed segments into
  // `ctx`. Null when no node exists at that path for ctx.version and the
  // instance's keys. Presence of the node's value is not checked here.
  // Allocation-free.
  const Node* Find(std::span<const std::string_view> segments, RenderContext& ctx) const;

  // Appends a leaf's value; false (and `out` unchanged) when the leaf is absent.
  bool AppendLeaf(const Node& leaf, const RenderContext& ctx, std::string& out) const;

  // Appends a directory's listing; false (and `out` unchanged) when the
  // directory is absent (no present child).
  bool AppendListing(const Node& dir, const RenderContext& ctx, std::string& out) const;

 private:
  bool Present(const Node& node, const RenderContext& ctx, std::string& scratch) const;
  bool AppendKeys(const Node& keyed, const RenderContext& ctx, std::string& out, bool& first) const;

  std::vector<Node> nodes_;  // [0] is the version root; constant after construction
  bool slash_root_directories_ = false;
};

// The EC2 categories OpenIMDS serves (ec2.md §1.5, §1.6, §1.7, §1.8).
std::span<const NodeSpec> Ec2Categories();

// How `dialect` cuts Ec2Categories(): AWS takes the table as it is; Nova
// (openstack.md §1.4, nova/api/metadata/base.py get_ec2_metadata) takes its
// 2009-04-04 key set with Nova's version gates, lists the keys Nova always
// has even when the record leaves them empty (200, empty body: cloud-init
// crawls every listed key), and lists "meta-data/" with its slash.
Ec2TreeOptions TreeOptionsFor(Ec2Dialect dialect);

// True if `key` may appear under tags/instance/: [A-Za-z0-9+-=.,_:@]+, and
// not ".", ".." or "_index" (AWS Using_Tags.md). Other keys are not served.
bool IsImdsTagKey(std::string_view key);

// The AWS partition ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b")
// and its service domain, derived from the region's prefix.
std::string_view PartitionForRegion(std::string_view region);
std::string_view DomainForRegion(std::string_view region);

}  // namespace openimds::flavour::ec2
