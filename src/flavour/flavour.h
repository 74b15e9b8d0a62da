#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/http_message.h"
#include "common/status.h"
#include "model/instance.h"

namespace openimds::flavour {

// Renders the canonical Instance in one cloud's wire format, with that
// cloud's request policy (required headers, tokens, version gating).
// Immutable after construction; safe for concurrent use. Never sees sockets,
// Beast types or SQL.
class Flavour {
 public:
  virtual ~Flavour() = default;

  // Stable name used in config, logs and metrics, e.g. "ec2".
  virtual std::string_view Name() const = 0;

  // True iff this flavour owns `request` (path prefix, headers).
  virtual bool Owns(const common::Request& request) const = 0;

  // Fills `out` completely for `request` on behalf of `instance`: status,
  // content type, body, extra headers, and ip_ttl where the response must
  // leave with a particular hop limit. Errors are rendered in the flavour's
  // own format (EC2's XHTML 404, ...). The returned Status is the outcome for
  // counters and logs: OK, NotFound for unknown paths, Unauthenticated or
  // PermissionDenied when the flavour's policy refuses the call,
  // MethodNotAllowed, InvalidArgument.
  //
  // Hot path: appends to out.body, whose capacity the caller reuses; avoid
  // other allocations.
  virtual common::Status Render(const model::Instance& instance, const common::Request& request,
                                common::Response& out) const = 0;

  // Fills `out` with this flavour's rendering of an error that happened
  // before Render could run (unknown caller, endpoint refused by identity).
  // `error.message()` is shown to the caller.
  virtual void RenderError(const common::Status& error, const common::Request& request,
                           common::Response& out) const = 0;

  // The record's metadata options (model::MetadataOptions) hold for every
  // flavour. True iff Render applies them itself, in its cloud's own terms
  // (EC2: 403 when the endpoint is disabled, 401 without a token when tokens
  // are required). Otherwise service::MetadataService applies them before
  // Render: endpoint disabled -> PermissionDenied for every path; tokens
  // required -> a valid IMDSv2 token for this instance in
  // X-aws-ec2-metadata-token, else Unauthenticated (unless the flavour
  // requires an anti-SSRF header of its own, below). Both are rendered with
  // RenderError.
  virtual bool AppliesMetadataOptions() const { return false; }

  // True iff every request this flavour answers must carry a header of its
  // cloud's own that a request forged through a server-side request forgery
  // cannot set (GCE's "Metadata-Flavor: Google", Azure's "Metadata: true").
  // Such a flavour is the SSRF defence EC2's token is, so "tokens required"
  // does not also ask its callers for an EC2 token.
  virtual bool RequiresOwnAntiSsrfHeader() const { return false; }
};

// The flavours a server serves, in precedence order. Built by app/ (no
// static registration); immutable afterwards.
class Registry {
 public:
  void Add(std::unique_ptr<Flavour> flavour) { flavours_.push_back(std::move(flavour)); }

  // The first flavour that owns `request`, or nullptr.
  const Flavour* Find(const common::Request& request) const {
    for (const auto& f : flavours_) {
      if (f->Owns(request)) return f.get();
    }
    return nullptr;
  }
  const Flavour* FindByName(std::string_view name) const {
    for (const auto& f : flavours_) {
      if (f->Name() == name) return f.get();
    }
    return nullptr;
  }

 private:
  std::vector<std::unique_ptr<Flavour>> flavours_;
};

}  // namespace openimds::flavour
