// The one list of flavours: precedence order, and the guest headers the
// proxy forwards, assembled from what each module declares.
#include "app/flavours.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace openimds::app {
namespace {

// A flavour that exists only here: declares headers, has no runtime.
class ToyModule final : public flavour::Module {
 public:
  explicit ToyModule(std::vector<std::string_view> headers) : headers_(std::move(headers)) {}
  std::string_view Name() const override { return "toy"; }
  void RegisterOptions(CLI::App& serve) override { serve.add_flag("--toy-option", option_); }
  std::vector<std::string_view> GuestHeaders() const override { return headers_; }
  common::Result<std::unique_ptr<flavour::Flavour>> Create(const flavour::ServeContext&) override {
    return common::Unavailable("not built in this test");
  }
  void Start() override {}
  void Stop() override {}
  bool option_ = false;

 private:
  std::vector<std::string_view> headers_;
};

TEST(FlavoursTest, OpenStackComesBeforeEc2WhichOwnsTheRoot) {
  auto modules = FlavourModules();
  std::vector<std::string_view> names;
  for (const auto& m : modules) names.push_back(m->Name());
  EXPECT_EQ(names, (std::vector<std::string_view>{"openstack", "ec2"}));
}

TEST(FlavoursTest, GuestHeadersAreTheModulesOwnWithoutRepeats) {
  EXPECT_EQ(FlavourGuestHeaders(FlavourModules()),
            (std::vector<std::string>{"X-aws-ec2-metadata-token",
                                      "X-aws-ec2-metadata-token-ttl-seconds"}));

  auto modules = FlavourModules();
  modules.push_back(std::make_unique<ToyModule>(
      std::vector<std::string_view>{"Metadata-Flavor", "x-aws-ec2-metadata-token"}));
  EXPECT_EQ(FlavourGuestHeaders(modules),
            (std::vector<std::string>{"X-aws-ec2-metadata-token",
                                      "X-aws-ec2-metadata-token-ttl-seconds", "Metadata-Flavor"}));
}

TEST(FlavoursTest, EachModuleRegistersItsOwnFlags) {
  CLI::App app;
  CLI::App* serve = app.add_subcommand("serve");
  auto modules = FlavourModules();
  auto toy = std::make_unique<ToyModule>(std::vector<std::string_view>{});
  ToyModule* toy_ptr = toy.get();
  modules.push_back(std::move(toy));
  for (const auto& m : modules) m->RegisterOptions(*serve);
  app.parse("serve --toy-option --ec2-versions nova --vendordata-cache-ttl 5", false);
  EXPECT_TRUE(toy_ptr->option_);
  EXPECT_NE(serve->get_option("--identity-keys"), nullptr);
  EXPECT_NE(serve->get_option("--vendordata-target"), nullptr);
}

}  // namespace
}  // namespace openimds::app
