#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace openimds::flavour::openstack {

// Where the OpenStack flavour keeps instance passwords (Nova's
// /openstack/<ver>/password). The flavour declares the interface it needs;
// app/ implements it over the store (store::Store secrets
// "password/<instance id>", whose GetOrCreateSecret is an atomic
// first-writer-wins compare-and-set). Implementations are thread-safe.
class PasswordStore {
 public:
  virtual ~PasswordStore() = default;

  // The stored password, or nullopt when none is set. Unavailable when the
  // backing store cannot be read.
  virtual common::Result<std::optional<std::string>> Get(std::string_view instance_id) const = 0;

  // Stores `value` iff no password is set. True when this call stored it;
  // false when one was already set (two racing calls: exactly one gets true,
  // unless both carry the same value). Unavailable when the store cannot be
  // written.
  virtual common::Result<bool> SetIfAbsent(std::string_view instance_id,
                                           std::string_view value) const = 0;
};

// In memory, for tests and for servers without a persistent store.
class MemoryPasswordStore final : public PasswordStore {
 public:
  common::Result<std::optional<std::string>> Get(std::string_view instance_id) const override;
  common::Result<bool> SetIfAbsent(std::string_view instance_id,
                                   std::string_view value) const override;
  // Admin side: forget the password (Nova's DELETE os-server-password).
  void Clear(std::string_view instance_id);

 private:
  mutable std::mutex mu_;
  mutable std::map<std::string, std::string, std::less<>> passwords_;  // guarded by mu_
};

// Adapter over two callables, so app/ can wire a store without a class of
// its own. Both must be set and thread-safe.
class CallbackPasswordStore final : public PasswordStore {
 public:
  using GetFn = std::function<common::Result<std::optional<std::string>>(std::string_view)>;
  using SetFn = std::function<common::Result<bool>(std::string_view, std::string_view)>;
  CallbackPasswordStore(GetFn get, SetFn set_if_absent)
      : get_(std::move(get)), set_(std::move(set_if_absent)) {}
  common::Result<std::optional<std::string>> Get(std::string_view id) const override {
    return get_(id);
  }
  common::Result<bool> SetIfAbsent(std::string_view id, std::string_view value) const override {
    return set_(id, value);
  }

 private:
  const GetFn get_;
  const SetFn set_;
};

}  // namespace openimds::flavour::openstack
