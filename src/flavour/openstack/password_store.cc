#include "flavour/openstack/password_store.h"

namespace openimds::flavour::openstack {

common::Result<std::optional<std::string>> MemoryPasswordStore::Get(
    std::string_view instance_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = passwords_.find(instance_id);
  if (it == passwords_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

common::Result<bool> MemoryPasswordStore::SetIfAbsent(std::string_view instance_id,
                                                      std::string_view value) const {
  std::lock_guard<std::mutex> lock(mu_);
  return passwords_.emplace(std::string(instance_id), std::string(value)).second;
}

void MemoryPasswordStore::Clear(std::string_view instance_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = passwords_.find(instance_id); it != passwords_.end()) passwords_.erase(it);
}

}  // namespace openimds::flavour::openstack
