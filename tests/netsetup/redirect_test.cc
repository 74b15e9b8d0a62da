#include "netsetup/redirect.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "netsetup/command_runner.h"

namespace openimds::netsetup {
namespace {

// Records what would run; answers from a script of outputs.
class FakeRunner : public CommandRunner {
 public:
  struct Call {
    std::vector<std::string> argv;
    std::string input;
  };
  common::Result<Output> Run(const std::vector<std::string>& argv,
                             std::string_view input) override {
    calls.push_back({argv, std::string(input)});
    if (!replies.empty()) {
      Output o = replies.front();
      replies.erase(replies.begin());
      return o;
    }
    return Output{};
  }
  std::vector<Call> calls;
  std::vector<Output> replies;
};

TEST(RedirectTest, RendersTheExactRuleSet) {
  RedirectSpec spec;
  spec.interfaces = {"tap*", "br-tenant-a"};
  spec.target_v4 = "10.0.0.1:9697";
  spec.target_v6 = "[fd00::1]:9697";
  auto script = RenderRedirect(spec);
  ASSERT_TRUE(script.ok()) << script.status().ToString();
  EXPECT_EQ(*script,
            "# openimds redirect: metadata requests to where openimds listens.\n"
            "# Applied atomically by `nft -f -`; `openimds redirect remove` deletes the table.\n"
            "table inet openimds {}\n"
            "delete table inet openimds\n"
            "table inet openimds {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            "    iifname { \"tap*\", \"br-tenant-a\" } ip daddr 169.254.169.254 tcp dport 80 "
            "counter dnat ip to 10.0.0.1:9697\n"
            "    iifname { \"tap*\", \"br-tenant-a\" } ip6 daddr fd00:ec2::254 tcp dport 80 "
            "counter dnat ip6 to [fd00::1]:9697\n"
            "  }\n"
            "}\n");
}

TEST(RedirectTest, NoInterfacesMeansEveryInterfaceAndNoIpv6Rule) {
  RedirectSpec spec;
  spec.target_v4 = "192.0.2.10:8169";
  spec.table = "imds_tenant_a";
  auto script = RenderRedirect(spec);
  ASSERT_TRUE(script.ok());
  EXPECT_NE(script->find("table inet imds_tenant_a {\n"), std::string::npos);
  EXPECT_NE(script->find("    ip daddr 169.254.169.254 tcp dport 80 counter dnat ip to "
                         "192.0.2.10:8169\n"),
            std::string::npos)
      << *script;
  EXPECT_EQ(script->find("ip6"), std::string::npos);
  EXPECT_EQ(script->find("iifname"), std::string::npos);
}

TEST(RedirectTest, RefusesWhatNftWouldMisreadOrTheKernelWouldDrop) {
  struct Case {
    const char* what;
    RedirectSpec spec;
  };
  auto base = [] {
    RedirectSpec s;
    s.target_v4 = "10.0.0.1:9697";
    return s;
  };
  std::vector<Case> cases;
  for (const char* iface : {"eth0\" accept", "a b", "", "waytoolonginterfacename", "eth0;"}) {
    RedirectSpec s = base();
    s.interfaces = {iface};
    cases.push_back({iface, s});
  }
  for (const char* to : {"", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "fd00::1:80",
                         "127.0.0.1:8169", "host.example:80"}) {
    RedirectSpec s = base();
    s.target_v4 = to;
    cases.push_back({to, s});
  }
  for (const char* to6 : {"fd00::1:80", "[10.0.0.1]:80", "[fd00::1]", "[fd00::1]:x"}) {
    RedirectSpec s = base();
    s.target_v6 = to6;
    cases.push_back({to6, s});
  }
  {
    RedirectSpec s = base();
    s.table = "bad-table";
    cases.push_back({"table", s});
  }
  for (const auto& c : cases) {
    auto r = RenderRedirect(c.spec);
    EXPECT_FALSE(r.ok()) << c.what;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), common::Code::kInvalidArgument) << c.what;
    }
  }
}

TEST(RedirectTest, ApplyAndRemoveRunNftWithTheScript) {
  FakeRunner runner;
  Redirector r(runner, "oimds-test-ns");
  RedirectSpec spec;
  spec.interfaces = {"veth-a"};
  spec.target_v4 = "10.0.0.1:9697";
  ASSERT_TRUE(r.Apply(spec).ok());
  ASSERT_TRUE(r.Remove("openimds").ok());
  ASSERT_EQ(runner.calls.size(), 2u);
  const std::vector<std::string> nft = {"ip", "netns", "exec", "oimds-test-ns", "nft", "-f", "-"};
  EXPECT_EQ(runner.calls[0].argv, nft);
  EXPECT_EQ(runner.calls[0].input, *RenderRedirect(spec));
  EXPECT_EQ(runner.calls[1].argv, nft);
  EXPECT_EQ(runner.calls[1].input, "table inet openimds {}\ndelete table inet openimds\n");
}

TEST(RedirectTest, NftFailureIsReportedWithItsMessage) {
  FakeRunner runner;
  runner.replies.push_back({1, "", "Error: Could not process rule: No such file or directory\n"});
  Redirector r(runner);
  RedirectSpec spec;
  spec.target_v4 = "10.0.0.1:9697";
  common::Status s = r.Apply(spec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), common::Code::kUnavailable);
  EXPECT_NE(s.message().find("Could not process rule"), std::string::npos) << s.message();
  EXPECT_EQ(runner.calls[0].argv, (std::vector<std::string>{"nft", "-f", "-"}));
}

TEST(MetadataAddressTest, AddsAndRemovesWithIp) {
  FakeRunner runner;
  MetadataAddressSpec spec{"veth-b", "oimds-ns", true};
  ASSERT_TRUE(AddMetadataAddress(runner, spec).ok());
  ASSERT_EQ(runner.calls.size(), 2u);
  EXPECT_EQ(runner.calls[0].argv,
            (std::vector<std::string>{"ip", "-n", "oimds-ns", "-4", "addr", "replace",
                                      "169.254.169.254/32", "dev", "veth-b"}));
  EXPECT_EQ(runner.calls[1].argv,
            (std::vector<std::string>{"ip", "-n", "oimds-ns", "-6", "addr", "replace",
                                      "fd00:ec2::254/128", "dev", "veth-b", "nodad"}));
  runner.calls.clear();
  // v4 present, v6 absent: only v4 is deleted.
  runner.replies = {
      {0, "5: veth-b    inet 169.254.169.254/32 scope global veth-b\\ ...\n", ""},
      {0, "", ""},
      {0, "5: veth-b    inet6 fe80::1/64 scope link \\ ...\n", ""},
  };
  ASSERT_TRUE(RemoveMetadataAddress(runner, spec).ok());
  ASSERT_EQ(runner.calls.size(), 3u);
  EXPECT_EQ(runner.calls[1].argv,
            (std::vector<std::string>{"ip", "-n", "oimds-ns", "-4", "addr", "del",
                                      "169.254.169.254/32", "dev", "veth-b"}));
  EXPECT_FALSE(AddMetadataAddress(runner, {"bad name", "", false}).ok());
  EXPECT_FALSE(AddMetadataAddress(runner, {"eth0", "../etc", false}).ok());
}

TEST(SystemCommandRunnerTest, RunsAndCollects) {
  SystemCommandRunner runner;
  auto out = runner.Run({"sh", "-c", "cat; echo err >&2; exit 3"}, "hello");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->out, "hello");
  EXPECT_EQ(out->err, "err\n");
  EXPECT_FALSE(runner.Run({"/nonexistent/oimds-no-such-program"}, "").ok());
  SystemCommandRunner impatient(std::chrono::milliseconds(200));
  auto slow = impatient.Run({"sleep", "5"}, "");
  EXPECT_EQ(slow.status().code(), common::Code::kUnavailable);
}

// Against the real kernel, inside a network namespace this test creates and
// deletes: nothing touches the host's own rule set or interfaces.
class RealNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for ip netns and nft";
    ns_ = "oimds-" + std::to_string(getpid()) + "-nsetup";
    auto add = runner_.Run({"ip", "netns", "add", ns_}, "");
    if (!add.ok() || add->exit_code != 0) {
      GTEST_SKIP() << "ip netns unavailable: " << (add.ok() ? add->err : add.status().message());
    }
    created_ = true;
    auto nft = runner_.Run({"ip", "netns", "exec", ns_, "nft", "list", "ruleset"}, "");
    if (!nft.ok() || nft->exit_code != 0) GTEST_SKIP() << "nft unavailable";
  }
  void TearDown() override {
    if (created_) (void)runner_.Run({"ip", "netns", "del", ns_}, "");
  }
  std::string Ruleset() {
    auto out = runner_.Run({"ip", "netns", "exec", ns_, "nft", "list", "ruleset"}, "");
    EXPECT_TRUE(out.ok());
    return out.ok() ? out->out : "";
  }

  SystemCommandRunner runner_;
  std::string ns_;
  bool created_ = false;
};

TEST_F(RealNetnsTest, ApplyIsIdempotentAndRemoveRestores) {
  const std::string before = Ruleset();
  Redirector r(runner_, ns_);
  RedirectSpec spec;
  spec.interfaces = {"veth-a", "tap*"};
  spec.target_v4 = "10.0.0.1:9697";
  spec.target_v6 = "[fd00::1]:9697";
  ASSERT_TRUE(r.Apply(spec).ok());
  auto installed = r.Installed("openimds");
  ASSERT_TRUE(installed.ok()) << installed.status().ToString();
  ASSERT_TRUE(installed->has_value());
  EXPECT_NE((*installed)->find("dnat ip to 10.0.0.1:9697"), std::string::npos) << **installed;
  EXPECT_NE((*installed)->find("dnat ip6 to [fd00::1]:9697"), std::string::npos) << **installed;
  EXPECT_NE((*installed)->find("ip daddr 169.254.169.254 tcp dport 80"), std::string::npos);

  const std::string once = Ruleset();
  ASSERT_TRUE(r.Apply(spec).ok());
  EXPECT_EQ(Ruleset(), once) << "applying twice must not duplicate rules";

  spec.target_v4 = "10.0.0.2:9697";  // re-apply with a new target replaces
  ASSERT_TRUE(r.Apply(spec).ok());
  installed = r.Installed("openimds");
  ASSERT_TRUE(installed.ok() && installed->has_value());
  EXPECT_EQ((*installed)->find("10.0.0.1:9697"), std::string::npos);

  ASSERT_TRUE(r.Remove("openimds").ok());
  EXPECT_EQ(Ruleset(), before);
  ASSERT_TRUE(r.Remove("openimds").ok()) << "remove twice is fine";
  installed = r.Installed("openimds");
  ASSERT_TRUE(installed.ok());
  EXPECT_FALSE(installed->has_value());
}

TEST_F(RealNetnsTest, RemoveLeavesOtherTablesAlone) {
  auto other = runner_.Run({"ip", "netns", "exec", ns_, "nft", "-f", "-"},
                           "table inet operator_fw {\n chain input {\n  type filter hook input "
                           "priority 0; policy accept;\n }\n}\n");
  ASSERT_TRUE(other.ok() && other->exit_code == 0) << (other.ok() ? other->err : "");
  const std::string before = Ruleset();
  Redirector r(runner_, ns_);
  RedirectSpec spec;
  spec.target_v4 = "10.0.0.1:9697";
  ASSERT_TRUE(r.Apply(spec).ok());
  ASSERT_TRUE(r.Remove("openimds").ok());
  EXPECT_EQ(Ruleset(), before);
}

TEST_F(RealNetnsTest, MetadataAddressOnAnInterfaceInTheNamespace) {
  // A veth pair with both ends inside the namespace.
  auto link = runner_.Run(
      {"ip", "-n", ns_, "link", "add", "oimds0", "type", "veth", "peer", "name", "oimds1"}, "");
  ASSERT_TRUE(link.ok());
  ASSERT_EQ(link->exit_code, 0) << link->err;
  MetadataAddressSpec spec{"oimds0", ns_, true};
  ASSERT_TRUE(AddMetadataAddress(runner_, spec).ok());
  ASSERT_TRUE(AddMetadataAddress(runner_, spec).ok()) << "idempotent";
  auto shown = runner_.Run({"ip", "-n", ns_, "-o", "addr", "show", "dev", "oimds0"}, "");
  ASSERT_TRUE(shown.ok());
  EXPECT_NE(shown->out.find("169.254.169.254/32"), std::string::npos) << shown->out;
  EXPECT_NE(shown->out.find("fd00:ec2::254/128"), std::string::npos) << shown->out;
  ASSERT_TRUE(RemoveMetadataAddress(runner_, spec).ok());
  ASSERT_TRUE(RemoveMetadataAddress(runner_, spec).ok()) << "absent is fine";
  shown = runner_.Run({"ip", "-n", ns_, "-o", "addr", "show", "dev", "oimds0"}, "");
  EXPECT_EQ(shown->out.find("169.254.169.254"), std::string::npos) << shown->out;
  EXPECT_EQ(shown->out.find("fd00:ec2::254"), std::string::npos) << shown->out;
}

}  // namespace
}  // namespace openimds::netsetup
