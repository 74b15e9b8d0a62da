#include "app/redirect_command.h"

#include <iostream>

#include "netsetup/redirect.h"

namespace openimds::app {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

void AddRuleOptions(CLI::App* c, RedirectCommandOptions& o, bool need_target) {
  c->add_option("--interface", o.interfaces,
                "Redirect only what arrives on this interface (nft iifname; 'tap*' matches a "
                "prefix); repeatable. Default: every interface.");
  auto* to = c->add_option("--to", o.to, "Where 169.254.169.254:PORT goes: IPv4:PORT.");
  if (need_target) to->required();
  c->add_option("--to6", o.to6, "Where [fd00:ec2::254]:PORT goes: [IPv6]:PORT (optional).");
  c->add_option("--port", o.port, "Destination port guests use.")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  c->add_option("--table", o.table, "nftables table (family inet) that holds the rules.")
      ->capture_default_str();
  c->add_option("--netns", o.netns, "Act inside this network namespace (ip netns exec).");
}

}  // namespace

void RegisterRedirectCommand(CLI::App& app, RedirectCommandOptions& o) {
  CLI::App* r =
      app.add_subcommand("redirect",
                         "Show, apply or remove the nftables rules that send 169.254.169.254:80 to "
                         "openimds; put the metadata address on an interface.");
  r->require_subcommand(1);
  r->callback([&o] { o.selected = true; });

  CLI::App* show = r->add_subcommand("show", "Print the exact rule set `apply` would load.");
  AddRuleOptions(show, o, /*need_target=*/false);
  show->add_flag("--installed", o.installed,
                 "Print what is installed now (nft list table) instead.");
  show->callback([&o] { o.action = "show"; });

  CLI::App* apply = r->add_subcommand(
      "apply", "Install (or replace) the rule set atomically; running it again changes nothing.");
  AddRuleOptions(apply, o, /*need_target=*/true);
  apply->callback([&o] { o.action = "apply"; });

  CLI::App* remove = r->add_subcommand(
      "remove", "Delete the rule set's table; the host is then as before `apply`.");
  remove->add_option("--table", o.table, "nftables table to delete.")->capture_default_str();
  remove->add_option("--netns", o.netns, "Act inside this network namespace.");
  remove->callback([&o] { o.action = "remove"; });

  CLI::App* address = r->add_subcommand(
      "address",
      "Put 169.254.169.254/32 (and fd00:ec2::254/128) on an interface, for a proxy "
      "or server that listens there directly.");
  address->require_subcommand(1);
  for (const char* verb : {"add", "remove"}) {
    CLI::App* c = address->add_subcommand(verb, std::string(verb) + " the metadata address");
    c->add_option("--interface", o.interfaces, "The interface.")->required()->expected(1);
    c->add_option("--netns", o.netns, "Inside this network namespace.");
    c->add_flag("--ipv6", o.ipv6, "Also fd00:ec2::254/128.");
    c->callback([&o, verb] { o.action = std::string("address-") + verb; });
  }
  r->footer(
      "\nExamples:\n"
      "  openimds redirect show --interface 'tap*' --to 10.0.0.1:9697\n"
      "  openimds redirect apply --interface veth-a --to 10.0.0.1:9697\n"
      "  openimds redirect remove\n"
      "  openimds redirect address add --netns tenant-a --interface eth0\n");
}

int RunRedirectWith(const RedirectCommandOptions& o, netsetup::CommandRunner& runner,
                    std::ostream& out, std::ostream& err) {
  netsetup::RedirectSpec spec;
  spec.interfaces = o.interfaces;
  spec.target_v4 = o.to;
  spec.target_v6 = o.to6;
  spec.table = o.table;
  spec.port = static_cast<uint16_t>(o.port);
  netsetup::Redirector redirector(runner, o.netns);

  if (o.action == "show") {
    if (o.installed) {
      auto installed = redirector.Installed(o.table);
      if (!installed.ok()) {
        err << "openimds redirect: " << installed.status().message() << "\n";
        return installed.status().code() == common::Code::kInvalidArgument ? kExitUsage
                                                                           : kExitFailed;
      }
      if (!installed->has_value()) {
        out << "# table inet " << o.table << " is not installed\n";
      } else {
        out << **installed;
      }
      return kExitOk;
    }
    if (o.to.empty()) {
      err << "openimds redirect show: --to ADDRESS:PORT is required (or --installed)\n";
      return kExitUsage;
    }
    auto script = netsetup::RenderRedirect(spec);
    if (!script.ok()) {
      err << "openimds redirect: " << script.status().message() << "\n";
      return kExitUsage;
    }
    out << *script;
    return kExitOk;
  }
  if (o.action == "apply" || o.action == "remove") {
    auto rendered =
        o.action == "apply" ? netsetup::RenderRedirect(spec) : netsetup::RenderRemove(o.table);
    if (!rendered.ok()) {
      err << "openimds redirect: " << rendered.status().message() << "\n";
      return kExitUsage;
    }
    common::Status s = o.action == "apply" ? redirector.Apply(spec) : redirector.Remove(o.table);
    if (!s.ok()) {
      err << "openimds redirect " << o.action << ": " << s.message() << "\n";
      return kExitFailed;
    }
    if (o.action == "apply") {
      out << "applied table inet " << o.table << ": 169.254.169.254:" << o.port << " -> " << o.to;
      if (!o.to6.empty()) out << ", [fd00:ec2::254]:" << o.port << " -> " << o.to6;
      out << "\n";
    } else {
      out << "removed table inet " << o.table << "\n";
    }
    return kExitOk;
  }
  if (o.action == "address-add" || o.action == "address-remove") {
    netsetup::MetadataAddressSpec a;
    a.interface = o.interfaces.empty() ? "" : o.interfaces.front();
    a.netns = o.netns;
    a.ipv6 = o.ipv6;
    common::Status s = o.action == "address-add" ? netsetup::AddMetadataAddress(runner, a)
                                                 : netsetup::RemoveMetadataAddress(runner, a);
    if (!s.ok()) {
      err << "openimds redirect address: " << s.message() << "\n";
      return s.code() == common::Code::kInvalidArgument ? kExitUsage : kExitFailed;
    }
    return kExitOk;
  }
  err << "openimds redirect: choose show, apply, remove or address\n";
  return kExitUsage;
}

int RunRedirect(const RedirectCommandOptions& options) {
  netsetup::SystemCommandRunner runner;
  return RunRedirectWith(options, runner, std::cout, std::cerr);
}

}  // namespace openimds::app
