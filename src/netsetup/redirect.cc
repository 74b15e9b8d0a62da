#include "netsetup/redirect.h"

#include <charconv>

#include "common/ip_address.h"

namespace openimds::netsetup {
namespace {

bool ValidTableName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

struct Target {
  common::IpAddress address;
  uint16_t port = 0;
};

common::Result<Target> ParseTarget(std::string_view text, bool want_v6, std::string_view flag) {
  std::string_view host, port;
  if (want_v6) {
    auto close = text.find(']');
    if (text.empty() || text.front() != '[' || close == std::string_view::npos ||
        close + 1 >= text.size() || text[close + 1] != ':') {
      return common::InvalidArgument(std::string(flag) + " must be [IPv6]:PORT, got '" +
                                     std::string(text) + "'");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return common::InvalidArgument(std::string(flag) + " must be IPv4:PORT, got '" +
                                     std::string(text) + "'");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  Target t;
  auto ip = common::IpAddress::Parse(host);
  if (!ip || ip->is_v4() == want_v6) {
    return common::InvalidArgument(std::string(flag) + ": '" + std::string(host) + "' is not an " +
                                   (want_v6 ? "IPv6" : "IPv4") + " address");
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 ||
      p > 65535) {
    return common::InvalidArgument(std::string(flag) + ": bad port '" + std::string(port) + "'");
  }
  if (!want_v6 && ip->bytes()[0] == 127) {
    return common::InvalidArgument(
        std::string(flag) +
        ": DNAT to 127.0.0.0/8 is dropped for traffic from other interfaces unless "
        "route_localnet is set; listen on an address of the interface instead");
  }
  t.address = *ip;
  t.port = static_cast<uint16_t>(p);
  return t;
}

std::string InterfaceSet(const std::vector<std::string>& interfaces) {
  if (interfaces.empty()) return "";
  std::string s = "iifname { ";
  for (size_t i = 0; i < interfaces.size(); ++i) {
    if (i > 0) s += ", ";
    s += "\"" + interfaces[i] + "\"";
  }
  return s + " } ";
}

common::Status Failed(const std::string& what, const CommandRunner::Output& out) {
  std::string msg = out.err.empty() ? out.out : out.err;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return common::Unavailable(what + " failed (exit " + std::to_string(out.exit_code) + "): " + msg);
}

}  // namespace

bool ValidInterfaceName(std::string_view name, bool allow_wildcard) {
  if (allow_wildcard && !name.empty() && name.back() == '*') name.remove_suffix(1);
  if (name.empty() || name.size() > 15) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '@' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

common::Result<std::string> RenderRedirect(const RedirectSpec& spec) {
  if (!ValidTableName(spec.table)) {
    return common::InvalidArgument("table name must be 1-32 characters of [A-Za-z0-9_]");
  }
  for (const auto& i : spec.interfaces) {
    if (!ValidInterfaceName(i, /*allow_wildcard=*/true)) {
      return common::InvalidArgument("'" + i + "' is not an interface name");
    }
  }
  if (spec.port == 0) return common::InvalidArgument("the matched port must not be 0");
  if (spec.target_v4.empty()) return common::InvalidArgument("--to ADDRESS:PORT is required");
  auto v4 = ParseTarget(spec.target_v4, /*want_v6=*/false, "--to");
  if (!v4.ok()) return v4.status();
  std::optional<Target> v6;
  if (!spec.target_v6.empty()) {
    auto t = ParseTarget(spec.target_v6, /*want_v6=*/true, "--to6");
    if (!t.ok()) return t.status();
    v6 = *t;
  }
  const std::string port = std::to_string(spec.port);
  const std::string iif = InterfaceSet(spec.interfaces);
  std::string s;
  s += "# openimds redirect: metadata requests to where openimds listens.\n";
  s += "# Applied atomically by `nft -f -`; `openimds redirect remove` deletes the table.\n";
  s += "table inet " + spec.table + " {}\n";
  s += "delete table inet " + spec.table + "\n";
  s += "table inet " + spec.table + " {\n";
  s += "  chain prerouting {\n";
  s += "    type nat hook prerouting priority dstnat; policy accept;\n";
  s += "    " + iif + "ip daddr " + std::string(kMetadataIpv4) + " tcp dport " + port +
       " counter dnat ip to " + v4->address.ToString() + ":" + std::to_string(v4->port) + "\n";
  if (v6) {
    s += "    " + iif + "ip6 daddr " + std::string(kMetadataIpv6) + " tcp dport " + port +
         " counter dnat ip6 to [" + v6->address.ToString() + "]:" + std::to_string(v6->port) + "\n";
  }
  s += "  }\n";
  s += "}\n";
  return s;
}

common::Result<std::string> RenderRemove(std::string_view table) {
  if (!ValidTableName(table)) {
    return common::InvalidArgument("table name must be 1-32 characters of [A-Za-z0-9_]");
  }
  // Creating an empty table first makes the delete succeed when it is absent.
  return "table inet " + std::string(table) + " {}\ndelete table inet " + std::string(table) + "\n";
}

common::Status Redirector::RunNft(const std::string& script) {
  auto out = runner_.Run(InNetns(netns_, {"nft", "-f", "-"}), script);
  if (!out.ok()) return out.status();
  if (out->exit_code != 0) return Failed("nft -f -", *out);
  return common::Status::Ok();
}

common::Status Redirector::Apply(const RedirectSpec& spec) {
  auto script = RenderRedirect(spec);
  if (!script.ok()) return script.status();
  return RunNft(*script);
}

common::Status Redirector::Remove(std::string_view table) {
  auto script = RenderRemove(table);
  if (!script.ok()) return script.status();
  return RunNft(*script);
}

common::Result<std::optional<std::string>> Redirector::Installed(std::string_view table) {
  if (!ValidTableName(table)) {
    return common::InvalidArgument("table name must be 1-32 characters of [A-Za-z0-9_]");
  }
  auto tables = runner_.Run(InNetns(netns_, {"nft", "list", "tables", "inet"}), "");
  if (!tables.ok()) return tables.status();
  if (tables->exit_code != 0) return Failed("nft list tables", *tables);
  const std::string line = "table inet " + std::string(table);
  bool present = false;
  size_t pos = 0;
  while ((pos = tables->out.find(line, pos)) != std::string::npos) {
    size_t end = pos + line.size();
    if ((pos == 0 || tables->out[pos - 1] == '\n') &&
        (end == tables->out.size() || tables->out[end] == '\n')) {
      present = true;
      break;
    }
    pos = end;
  }
  if (!present) return std::optional<std::string>();
  auto listed =
      runner_.Run(InNetns(netns_, {"nft", "list", "table", "inet", std::string(table)}), "");
  if (!listed.ok()) return listed.status();
  if (listed->exit_code != 0) return Failed("nft list table", *listed);
  return std::optional<std::string>(listed->out);
}

namespace {

std::vector<std::string> Ip(const MetadataAddressSpec& spec, std::vector<std::string> args) {
  std::vector<std::string> argv = {"ip"};
  if (!spec.netns.empty()) {
    argv.push_back("-n");
    argv.push_back(spec.netns);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

common::Status CheckSpec(const MetadataAddressSpec& spec) {
  if (!ValidInterfaceName(spec.interface, /*allow_wildcard=*/false)) {
    return common::InvalidArgument("'" + spec.interface + "' is not an interface name");
  }
  // Namespace names are file names under /run/netns; keep them plain words.
  if (spec.netns.size() > 64) {
    return common::InvalidArgument("'" + spec.netns + "' is not a namespace name");
  }
  for (char c : spec.netns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return common::InvalidArgument("'" + spec.netns + "' is not a namespace name");
  }
  return common::Status::Ok();
}

}  // namespace

common::Status AddMetadataAddress(CommandRunner& runner, const MetadataAddressSpec& spec) {
  common::Status valid = CheckSpec(spec);
  if (!valid.ok()) return valid;
  auto run = [&](std::vector<std::string> args) -> common::Status {
    auto out = runner.Run(Ip(spec, std::move(args)), "");
    if (!out.ok()) return out.status();
    if (out->exit_code != 0) return Failed("ip addr replace", *out);
    return common::Status::Ok();
  };
  common::Status s =
      run({"-4", "addr", "replace", std::string(kMetadataIpv4) + "/32", "dev", spec.interface});
  if (!s.ok() || !spec.ipv6) return s;
  return run({"-6", "addr", "replace", std::string(kMetadataIpv6) + "/128", "dev", spec.interface,
              "nodad"});
}

common::Status RemoveMetadataAddress(CommandRunner& runner, const MetadataAddressSpec& spec) {
  common::Status valid = CheckSpec(spec);
  if (!valid.ok()) return valid;
  struct Item {
    const char* family;
    std::string prefix;
  };
  std::vector<Item> items = {{"-4", std::string(kMetadataIpv4) + "/32"}};
  if (spec.ipv6) items.push_back({"-6", std::string(kMetadataIpv6) + "/128"});
  for (const auto& item : items) {
    auto shown =
        runner.Run(Ip(spec, {item.family, "-o", "addr", "show", "dev", spec.interface}), "");
    if (!shown.ok()) return shown.status();
    if (shown->exit_code != 0) return Failed("ip addr show", *shown);
    if (shown->out.find(" " + item.prefix + " ") == std::string::npos) continue;  // absent
    auto del =
        runner.Run(Ip(spec, {item.family, "addr", "del", item.prefix, "dev", spec.interface}), "");
    if (!del.ok()) return del.status();
    if (del->exit_code != 0) return Failed("ip addr del", *del);
  }
  return common::Status::Ok();
}

}  // namespace openimds::netsetup
