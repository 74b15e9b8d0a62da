#include "flavour/ec2/ec2_tree.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace openimds::flavour::ec2 {
namespace {

[[noreturn]] void BadTable(std::string_view what, std::string_view path) {
  std::fprintf(stderr, "ec2 tree table: %.*s: '%.*s'\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(path.size()), path.data());
  std::abort();
}

// "0", "1", ... "99999": canonical decimal only, so "00" or "+1" never alias "0".
bool ParseIndex(std::string_view s, size_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  out = v;
  return true;
}

// Binds a keyed segment: true when the instance has that key.
bool Bind(KeySource source, std::string_view segment, RenderContext& ctx) {
  const model::Instance& instance = *ctx.instance;
  switch (source) {
    case KeySource::kNone: return false;
    case KeySource::kNicMac:
      for (const auto& nic : instance.nics) {
        if (nic.mac == segment) {
          ctx.nic = &nic;
          return true;
        }
      }
      return false;
    case KeySource::kBlockDevice:
      // Linear: a handful of entries, and std::map<std::string> has no
      // heterogeneous find (it would build a std::string per request).
      for (const auto& [name, device] : instance.block_devices) {
        if (name == segment) {
          ctx.key = name;
          ctx.value = &device;
          return true;
        }
      }
      return false;
    case KeySource::kPublicKeyIndex: {
      size_t index = 0;
      if (!ParseIndex(segment, index) || index >= instance.ssh_keys.size()) return false;
      ctx.key_index = index;
      return true;
    }
    case KeySource::kTagKey:
      if (!instance.options.tags_enabled || !IsImdsTagKey(segment)) return false;
      for (const auto& [key, value] : instance.tags) {
        if (key == segment) {
          ctx.key = key;
          ctx.value = &value;
          return true;
        }
      }
      return false;
    case KeySource::kIamRole:
      if (!instance.iam.has_value() || instance.iam->name.empty() ||
          instance.iam->name != segment) {
        return false;
      }
      ctx.key = instance.iam->name;
      return true;
    case KeySource::kIpv4Association:
      if (ctx.nic == nullptr) return false;
      for (const auto& [public_ip, private_ip] : ctx.nic->ipv4_associations) {
        if (public_ip == segment) {
          ctx.key = public_ip;
          ctx.value = &private_ip;
          return true;
        }
      }
      return false;
  }
  return false;
}

bool HasKeys(KeySource source, const RenderContext& ctx) {
  const model::Instance& instance = *ctx.instance;
  switch (source) {
    case KeySource::kNone: return false;
    case KeySource::kNicMac: return !instance.nics.empty();
    case KeySource::kBlockDevice: return !instance.block_devices.empty();
    case KeySource::kPublicKeyIndex: return !instance.ssh_keys.empty();
    case KeySource::kTagKey:
      if (!instance.options.tags_enabled) return false;
      for (const auto& [key, value] : instance.tags) {
        if (IsImdsTagKey(key)) return true;
      }
      return false;
    case KeySource::kIamRole: return instance.iam.has_value() && !instance.iam->name.empty();
    case KeySource::kIpv4Association:
      return ctx.nic != nullptr && !ctx.nic->ipv4_associations.empty();
  }
  return false;
}

void AddEntry(std::string_view name, bool slash, std::string& out, bool& first) {
  if (!first) out += '\n';
  first = false;
  out += name;
  if (slash) out += '/';
}

}  // namespace

Ec2Tree::Ec2Tree(std::span<const NodeSpec> table, Ec2TreeOptions options)
    : slash_root_directories_(options.slash_root_directories) {
  // The rows this tree serves: the whole table, or the key set's rows with
  // the key set's version and extra flags.
  std::vector<NodeSpec> specs;
  if (options.key_set.empty()) {
    specs.assign(table.begin(), table.end());
  } else {
    for (const KeySetRow& row : options.key_set) {
      const auto it = std::find_if(table.begin(), table.end(),
                                   [&](const NodeSpec& s) { return s.path == row.path; });
      if (it == table.end()) BadTable("key-set row names no table row", row.path);
    }
    for (const NodeSpec& spec : table) {
      const auto it = std::find_if(options.key_set.begin(), options.key_set.end(),
                                   [&](const KeySetRow& r) { return r.path == spec.path; });
      if (it == options.key_set.end()) continue;
      NodeSpec cut = spec;
      cut.since = it->since;
      cut.flags = static_cast<uint8_t>(cut.flags | it->flags);
      specs.push_back(cut);
    }
  }
  nodes_.emplace_back();  // the version root
  // Index of the node at each declared or implied path, for parent lookup
  // while building; a linear scan is fine for a table of ~60 rows.
  std::vector<std::pair<std::string_view, int>> by_path = {{"", 0}};
  auto find_path = [&](std::string_view p) -> int {
    for (const auto& [path, index] : by_path) {
      if (path == p) return index;
    }
    return -1;
  };
  for (const NodeSpec& spec : specs) {
    const int since = VersionIndex(spec.since);
    if (since < 0) BadTable("unknown version", spec.since);
    if (spec.path.empty() || spec.path.front() == '/' || spec.path.back() == '/') {
      BadTable("bad path", spec.path);
    }
    if (find_path(spec.path) >= 0) BadTable("duplicate path", spec.path);
    // Walk (and create) the named directories above this row.
    int parent = 0;
    size_t pos = 0;
    for (;;) {
      const size_t slash = spec.path.find('/', pos);
      if (slash == std::string_view::npos) break;
      const std::string_view dir_path = spec.path.substr(0, slash);
      const std::string_view dir_name = spec.path.substr(pos, slash - pos);
      int dir = find_path(dir_path);
      if (dir < 0) {
        if (dir_name == "*") BadTable("'*' directory used before its row", spec.path);
        if (nodes_[parent].keyed_child >= 0) BadTable("named node beside '*'", spec.path);
        dir = static_cast<int>(nodes_.size());
        Node node;
        node.name = dir_name;
        nodes_.push_back(std::move(node));
        nodes_[parent].children.push_back(static_cast<uint16_t>(dir));
        by_path.emplace_back(dir_path, dir);
      }
      if (!nodes_[dir].is_directory()) BadTable("child of a leaf", spec.path);
      parent = dir;
      pos = slash + 1;
    }
    Node node;
    node.name = spec.path.substr(pos);
    node.since = since;
    node.leaf = spec.leaf;
    node.keys = spec.keys;
    node.flags = spec.flags;
    if ((node.name == "*") != (spec.keys != KeySource::kNone)) {
      BadTable("'*' rows and only they need a key source", spec.path);
    }
    const int index = static_cast<int>(nodes_.size());
    if (node.name == "*") {
      if (!nodes_[parent].children.empty() || nodes_[parent].keyed_child >= 0) {
        BadTable("'*' must be its directory's only child", spec.path);
      }
      nodes_[parent].keyed_child = index;
    } else {
      if (nodes_[parent].keyed_child >= 0) BadTable("named node beside '*'", spec.path);
      nodes_[parent].children.push_back(static_cast<uint16_t>(index));
    }
    nodes_.push_back(std::move(node));
    by_path.emplace_back(spec.path, index);
  }
  for (Node& node : nodes_) {
    std::sort(node.children.begin(), node.children.end(),
              [this](uint16_t a, uint16_t b) { return nodes_[a].name < nodes_[b].name; });
  }
}

const Ec2Tree::Node* Ec2Tree::Find(std::span<const std::string_view> segments,
                                   RenderContext& ctx) const {
  const Node* node = &nodes_.front();
  for (std::string_view segment : segments) {
    if (!node->is_directory()) return nullptr;
    if (node->keyed_child >= 0) {
      const Node& keyed = nodes_[node->keyed_child];
      if (keyed.since > ctx.version || !Bind(keyed.keys, segment, ctx)) return nullptr;
      node = &keyed;
      continue;
    }
    const auto it = std::lower_bound(
        node->children.begin(), node->children.end(), segment,
        [this](uint16_t child, std::string_view name) { return nodes_[child].name < name; });
    if (it == node->children.end() || nodes_[*it].name != segment) return nullptr;
    const Node& child = nodes_[*it];
    if (child.since > ctx.version) return nullptr;
    node = &child;
  }
  return node;
}

bool Ec2Tree::AppendLeaf(const Node& leaf, const RenderContext& ctx, std::string& out) const {
  const size_t mark = out.size();
  leaf.leaf(ctx, out);
  return out.size() > mark || (leaf.flags & kEmptyIsValue) != 0;
}

bool Ec2Tree::Present(const Node& node, const RenderContext& ctx, std::string& scratch) const {
  if (node.since > ctx.version) return false;
  if (!node.is_directory()) {
    const size_t mark = scratch.size();
    const bool present = AppendLeaf(node, ctx, scratch);
    scratch.resize(mark);
    return present;
  }
  if (node.keyed_child >= 0) {
    const Node& keyed = nodes_[node.keyed_child];
    return keyed.since <= ctx.version &&
           ((keyed.flags & kListedWithoutKeys) != 0 || HasKeys(keyed.keys, ctx));
  }
  for (uint16_t child : node.children) {
    if (Present(nodes_[child], ctx, scratch)) return true;
  }
  return false;
}

bool Ec2Tree::AppendKeys(const Node& keyed, const RenderContext& ctx, std::string& out,
                         bool& first) const {
  const model::Instance& instance = *ctx.instance;
  const bool slash = keyed.is_directory();
  switch (keyed.keys) {
    case KeySource::kNone: break;
    case KeySource::kNicMac: {
      std::vector<std::string_view> macs;
      macs.reserve(instance.nics.size());
      for (const auto& nic : instance.nics) macs.push_back(nic.mac);
      std::sort(macs.begin(), macs.end());
      for (std::string_view mac : macs) AddEntry(mac, slash, out, first);
      break;
    }
    case KeySource::kBlockDevice:
      for (const auto& [name, device] : instance.block_devices) {
        AddEntry(name, slash, out, first);
      }
      break;
    case KeySource::kPublicKeyIndex:
      // "0=my-key": index '=' key name, never a trailing slash, in index
      // order (ec2.md §1.3; cloud-init parses exactly this).
      for (size_t i = 0; i < instance.ssh_keys.size(); ++i) {
        char digits[24];
        const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), i);
        AddEntry(std::string_view(digits, end - digits), false, out, first);
        out += '=';
        out += instance.ssh_keys[i].name;
      }
      break;
    case KeySource::kTagKey:
      if (!instance.options.tags_enabled) break;
      for (const auto& [key, value] : instance.tags) {
        if (IsImdsTagKey(key)) AddEntry(key, slash, out, first);
      }
      break;
    case KeySource::kIamRole:
      if (instance.iam.has_value() && !instance.iam->name.empty()) {
        AddEntry(instance.iam->name, slash, out, first);
      }
      break;
    case KeySource::kIpv4Association:
      if (ctx.nic == nullptr) break;
      // std::map order is byte order, as every listing.
      for (const auto& [public_ip, private_ip] : ctx.nic->ipv4_associations) {
        AddEntry(public_ip, slash, out, first);
      }
      break;
  }
  return !first;
}

bool Ec2Tree::AppendListing(const Node& dir, const RenderContext& ctx, std::string& out) const {
  bool first = true;
  if (dir.keyed_child >= 0) {
    const Node& keyed = nodes_[dir.keyed_child];
    if (keyed.since > ctx.version) return false;
    AppendKeys(keyed, ctx, out, first);
    return !first || (keyed.flags & kListedWithoutKeys) != 0;
  }
  const bool slashes = slash_root_directories_ || &dir != &nodes_.front();
  for (uint16_t index : dir.children) {
    const Node& child = nodes_[index];
    if (!Present(child, ctx, out)) continue;
    AddEntry(child.name, slashes && child.is_directory(), out, first);
  }
  return !first;
}

bool IsImdsTagKey(std::string_view key) {
  if (key.empty() || key == "." || key == ".." || key == "_index") return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '-' || c == '=' || c == '.' || c == ',' || c == '_' ||
                    c == ':' || c == '@';
    if (!ok) return false;
  }
  return true;
}

std::string_view PartitionForRegion(std::string_view region) {
  if (region.starts_with("cn-")) return "aws-cn";
  if (region.starts_with("us-gov-")) return "aws-us-gov";
  if (region.starts_with("us-isob-")) return "aws-iso-b";
  if (region.starts_with("us-iso-")) return "aws-iso";
  return "aws";
}

std::string_view DomainForRegion(std::string_view region) {
  const std::string_view partition = PartitionForRegion(region);
  if (partition == "aws-cn") return "amazonaws.com.cn";
  if (partition == "aws-iso") return "c2s.ic.gov";
  if (partition == "aws-iso-b") return "sc2s.sgov.gov";
  return "amazonaws.com";
}

}  // namespace openimds::flavour::ec2
