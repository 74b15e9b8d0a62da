#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string_view>
#include <vector>

#include "auth/token_authority.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "feed/follower.h"
#include "flavour/flavour.h"
#include "store/store.h"

namespace openimds::flavour {

// What `openimds serve` lends a flavour's runtime. Every reference outlives
// the module's Stop().
struct ServeContext {
  store::Store& store;
  const catalog::Catalog& catalog;
  feed::Follower& follower;            // Subscribe() in Start(), never later
  const auth::TokenAuthority& tokens;  // IMDSv2 tokens, rotated by serve
  const common::Clock& clock;
  common::MetricsRegistry& metrics;
};

// A flavour as `openimds serve` and `openimds proxy` see it: its options,
// the headers its guests send, its runtime (background work, caches) and the
// Flavour that renders. One module per folder under flavour/ (ec2/, openstack/,
// ...); app/ lists them, in precedence order, in one place.
//
// Life cycle, every step on one thread: construct; RegisterOptions (before
// the command line is parsed; the flags bind to the module's members);
// Create (once, after parsing); Start (once the server listens); Stop
// (after the change feed stopped, before the references of ServeContext
// go). A module that only registered options (the proxy's case) is just
// destroyed.
class Module {
 public:
  virtual ~Module() = default;

  // The Flavour's name ("ec2").
  virtual std::string_view Name() const = 0;

  // Adds this flavour's flags to `serve`.
  virtual void RegisterOptions(CLI::App& serve) = 0;

  // Request headers this flavour's guests send and its Flavour reads (EC2's
  // X-aws-ec2-metadata-token): what an `openimds proxy` must forward.
  virtual std::vector<std::string_view> GuestHeaders() const = 0;

  // Builds the runtime and the Flavour from the parsed options. The Flavour
  // may borrow the module (destroy it first). InvalidArgument for bad flags
  // or file contents; NotFound / PermissionDenied for a file it cannot or
  // may not read (common::ReadSecretFile); other codes for a failing
  // dependency.
  virtual common::Result<std::unique_ptr<Flavour>> Create(const ServeContext& context) = 0;

  // Starts background work; a no-op for a flavour that has none.
  virtual void Start() = 0;

  // Stops background work and joins its threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace openimds::flavour
