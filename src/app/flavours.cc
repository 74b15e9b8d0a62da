#include "app/flavours.h"

#include <algorithm>

#include "common/http_message.h"
#include "flavour/ec2/ec2_module.h"
#include "flavour/openstack/openstack_module.h"

namespace openimds::app {

std::vector<std::unique_ptr<flavour::Module>> FlavourModules() {
  std::vector<std::unique_ptr<flavour::Module>> modules;
  // OpenStack before EC2, which owns "/" and "/latest".
  modules.push_back(std::make_unique<flavour::openstack::OpenStackModule>());
  modules.push_back(std::make_unique<flavour::ec2::Ec2Module>());
  return modules;
}

std::vector<std::string> FlavourGuestHeaders(
    const std::vector<std::unique_ptr<flavour::Module>>& modules) {
  std::vector<std::string> out;
  for (const auto& m : modules) {
    for (std::string_view h : m->GuestHeaders()) {
      const bool seen = std::any_of(out.begin(), out.end(), [h](const std::string& s) {
        return common::EqualsIgnoreCase(s, h);
      });
      if (!seen) out.emplace_back(h);
    }
  }
  return out;
}

}  // namespace openimds::app
