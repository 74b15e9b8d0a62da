#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "flavour/flavour.h"
#include "flavour/openstack/dynamic_vendordata.h"
#include "flavour/openstack/password_store.h"

namespace openimds::flavour::openstack {

// Nova's metadata API, /openstack tree (openstack.md §1): a drop-in for
// nova-api-metadata behind cloud-init's DataSourceOpenStack. The EC2 tree
// Nova serves beside it is the ec2 flavour's (register this one first: it
// owns only /openstack paths).
//
// Owns every path whose posixpath.normpath form starts with "/openstack".
// Serves:
//   /openstack                       versions ≤ today (clock, UTC) + "latest"
//   /openstack/<ver>                 meta_data.json, user_data (if any),
//                                    password (≥2013-04-04), vendor_data.json
//                                    (≥2013-10-17), network_data.json
//                                    (≥2015-10-15), vendor_data2.json
//                                    (≥2016-10-06), in that fixed order
//   /openstack/<ver>/meta_data.json  application/json (openstack_documents.h)
//   /openstack/<ver>/user_data       raw bytes; 404 if none
//   /openstack/<ver>/vendor_data.json   deployment static JSON with the
//                                    instance's vendor_data merged over it
//   /openstack/<ver>/vendor_data2.json  {"static": <the same>, "<target>": <its JSON>,
//                                    ...} (DynamicJSON: see dynamic_vendordata.h;
//                                    a cold cache answers with Response::deferred)
//   /openstack/<ver>/network_data.json  text/plain as Nova sends it
//   /openstack/<ver>/password        GET: the password or ""; POST: set once
//   /openstack/content/NNNN          404 (no content files are modelled)
// Everything else under /openstack: 404 with webob's text body. The method
// is ignored except for password (GET/POST, else 400), as in Nova.
//
// Policy: an instance whose `flavours` list is non-empty and lacks
// "openstack" gets 404 (pinning; the service should refuse such calls
// before rendering too). Every refusal increments
// openstack_refused_total{reason=...} and logs one line.
//
// Immutable after construction; safe for concurrent use. Not allocation-free:
// the JSON documents are built per request (random_seed must be fresh anyway).
class OpenStackFlavour final : public Flavour {
 public:
  struct Options {
    // Nova's [api]vendordata_jsonfile_path content: a JSON object. Shown in
    // vendor_data.json and as "static" in vendor_data2.json.
    std::string static_vendor_data = "{}";
    // Nova's "StaticJSON in [api]vendordata_providers". When false,
    // vendor_data.json is 404 (still listed, as Nova does) and
    // vendor_data2.json has no "static" member.
    bool static_vendor_data_enabled = true;
    // Nova's "DynamicJSON in [api]vendordata_providers": the targets' values
    // in vendor_data2.json. Borrowed (thread-safe, must outlive the flavour);
    // null = no DynamicJSON.
    DynamicVendorData* dynamic_vendor_data = nullptr;
    // Nova's provider order: StaticJSON listed before DynamicJSON. Decides
    // only a target named "static": dropped when static comes first (Nova's
    // "Removing duplicate metadata key"), overwritten in place otherwise.
    bool static_before_dynamic = true;
    // Nova's [api]vendordata_dynamic_failure_fatal: a failed target makes
    // vendor_data2.json a 500 naming the target and the reason (else {}).
    bool vendordata_failure_fatal = false;
    // Nova's [api]dhcp_domain, appended to the hostname as ".<domain>".
    // Empty by default: the model's hostname is already what the guest gets.
    std::string dhcp_domain;
    // Nova serves network_data.json as text/plain; true sends application/json.
    bool network_data_as_json = false;
    // Nova's password.MAX_SIZE (4 system_metadata chunks of 255 characters).
    size_t max_password_bytes = 1020;
    // Fills the buffer with random bytes (random_seed). Default: getrandom(2).
    std::function<void(unsigned char*, size_t)> random_bytes;
  };

  // InvalidArgument when static_vendor_data is not a JSON object.
  // `clock`, `passwords` and `metrics` are borrowed and must outlive the
  // flavour; `passwords` may be null (password then answers 404).
  static common::Result<std::unique_ptr<OpenStackFlavour>> Create(
      Options options, const common::Clock& clock, const PasswordStore* passwords,
      common::MetricsRegistry& metrics);

  std::string_view Name() const override { return "openstack"; }
  bool Owns(const common::Request& request) const override;
  common::Status Render(const model::Instance& instance, const common::Request& request,
                        common::Response& out) const override;
  // The status mapped by common::HttpStatusFor; the message and a newline as
  // text/plain (404 without a message: webob's "404 Not Found" text).
  void RenderError(const common::Status& error, const common::Request& request,
                   common::Response& out) const override;

  // Nova's path normalisation (posixpath.normpath of the path; "" → "/"):
  // repeated slashes folded, "." dropped, ".." resolved (never above "/"),
  // no trailing slash. Exposed for tests.
  static std::string NormalizePath(std::string_view path);

 private:
  OpenStackFlavour(Options options, std::string static_vendor_data_compact,
                   const common::Clock& clock, const PasswordStore* passwords,
                   common::MetricsRegistry& metrics);

  common::Status NotFound(std::string_view reason, const model::Instance& instance,
                          const common::Request& request, common::Response& out) const;
  common::Status Password(const model::Instance& instance, const common::Request& request,
                          common::Response& out) const;
  void VendorData(const model::Instance& instance, std::string& out) const;
  common::Status VendorData2(const model::Instance& instance, const common::Request& request,
                             common::Response& out) const;

  // Constant after construction.
  const Options options_;
  const std::string static_vendor_data_;  // compact JSON object
  const common::Clock& clock_;
  const PasswordStore* const passwords_;

  common::Counter& requests_;
  common::Counter& not_found_;
  common::Counter& pinned_;
  common::Counter& password_bad_method_;
  common::Counter& password_too_large_;
  common::Counter& password_conflict_;
  common::Counter& password_unavailable_;
  common::Counter& passwords_set_;
};

}  // namespace openimds::flavour::openstack
