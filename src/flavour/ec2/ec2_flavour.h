#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "auth/document_signer.h"
#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "flavour/ec2/credential_provider.h"
#include "flavour/ec2/ec2_tree.h"
#include "flavour/ec2/ec2_versions.h"
#include "flavour/flavour.h"

namespace openimds::flavour::ec2 {

// The EC2 instance metadata service (IMDSv1 and IMDSv2), ec2.md §1–§2.
//
// Owns "/", "/latest[/...]" and "/<known dated version>[/...]" (known to the
// configured Options::dialect). Serves the version list, the meta-data /
// dynamic / user-data tree rendered from model::Instance (Ec2Categories(),
// version-gated, cut by TreeOptionsFor(dialect)), and the IMDSv2 token
// endpoint PUT /latest/api/token. Every response carries "Server: EC2ws".
//
// Request policy, in order:
//  1. instance.options.http_endpoint_enabled == false → 403 for everything.
//  2. Paths that are too long, too deep, contain '%', "." or ".." → 404.
//  3. /latest/api/token: PUT only (else 405, "Allow: OPTIONS, PUT");
//     X-Forwarded-For → 403; TTL header 1..21600 (else 400); 200 with the
//     token, the TTL echoed in X-Aws-Ec2-Metadata-Token-Ttl-Seconds, and
//     out.ip_ttl = the instance's hop limit. PUT on /<dated>/api/token → 403.
//  4. Other paths: GET and HEAD only (else 405, "Allow: GET, HEAD").
//  5. X-aws-ec2-metadata-token present → must verify for this instance, else
//     401 (see Options::reject_invalid_token_when_optional); absent with
//     http_tokens required → 401.
//  6. Lookup: leaf → 200 (user-data application/octet-stream, all else
//     text/plain, JSON included); directory with '/' → listing; directory
//     without '/' → 301 to the absolute '/' URL ("/" and "/latest" answer
//     200 both ways); absent → 404 with EC2's XHTML page (text/html).
//     Empty values are absent, never 200 with an empty body (tag values
//     excepted). Events (spot, rebalance, scheduled, Auto Scaling) are absent
//     until due by the injected clock; credentials are absent once expired
//     (the role stays listed), from the record or the CredentialProvider.
//
// Counters (the operator's view, ec2.md §7.1 item 8): imds_requests_total by
// version; imds_v1_requests_total by instance (EC2's MetadataNoToken, to find
// who still uses IMDSv1); imds_token_rejected_total by reason;
// imds_token_put_rejected_total by reason (X-Forwarded-For among them);
// imds_credential_reads_total by delivery (v1/v2) and result.
//
// Immutable after construction; safe for concurrent use. Render of a leaf
// appends to out.body and allocates nothing else (the "Server" header fits
// std::string's small buffer; the per-instance v1 counter is found through a
// per-thread table after its first use on that thread).
class Ec2Flavour final : public Flavour {
 public:
  // Render applies the endpoint and token options itself (policy 1 and 5).
  bool AppliesMetadataOptions() const override { return true; }

  struct Options {
    // Host for absolute 301 Locations when the request has no usable Host
    // header (absent, or with characters a host name cannot contain).
    std::string location_host = "169.254.169.254";
    // An invalid or expired token when http_tokens is optional: true → 401,
    // false → served as an IMDSv1 request (still counted as rejected).
    // ec2.md §2.2: AWS's 401 row ("the GET request uses an invalid token")
    // has no mode qualifier, and SDKs answer a 401 by fetching a new token,
    // so 401 is the inferred EC2 behaviour [INF].
    bool reject_invalid_token_when_optional = true;
    // A directory asked without its trailing '/' gets 301 to the '/' form,
    // as EC2 does (ec2.md §1.3 [EMU]). false: answer with the listing (AEMM's
    // behaviour), for clients that do not follow redirects.
    bool redirect_directories = true;
    // Which EC2 service to imitate (Ec2Dialect). kNova: Nova's versions
    // (1.0 .. 2009-04-04, "latest" = 2009-04-04), Nova's key set, and no 301
    // for directories asked without '/' (Nova normalises paths and answers
    // the listing), whatever redirect_directories says. Tokens, the
    // endpoint switch and the counters work as in kAws.
    Ec2Dialect dialect = Ec2Dialect::kAws;
    // Longer paths are 404 without lookup. EC2's longest real path is under
    // 150 bytes; 1 KiB leaves room for long tag keys.
    size_t max_path_bytes = 1024;
    // Instances with their own imds_v1_requests_total series; IMDSv1 requests
    // of any further instance are counted under instance="_other", so a large
    // fleet cannot grow the metrics page without bound.
    size_t max_v1_instance_series = 10000;
  };

  // `tokens`, `clock` and `metrics` are borrowed and must outlive the flavour;
  // so must `signer` and `credentials` when given. Without a signer the
  // signed identity forms (pkcs7, signature, rsa2048) are absent; without a
  // credential provider only the record's own credentials are served.
  // Registers this flavour's counters in `metrics`.
  Ec2Flavour(Options options, const auth::TokenAuthority& tokens, const common::Clock& clock,
             common::MetricsRegistry& metrics, const auth::DocumentSigner* signer = nullptr,
             const CredentialProvider* credentials = nullptr);

  std::string_view Name() const override { return "ec2"; }
  bool Owns(const common::Request& request) const override;
  common::Status Render(const model::Instance& instance, const common::Request& request,
                        common::Response& out) const override;
  // 404 without a message → EC2's XHTML page. With a message (e.g. "no
  // instance is registered for 10.0.0.9 in network blue"), the message and a
  // newline as text/plain, with the status mapped by common::HttpStatusFor.
  void RenderError(const common::Status& error, const common::Request& request,
                   common::Response& out) const override;

  // Header names, as EC2 spells them (matched case-insensitively).
  static constexpr std::string_view kTokenHeader = auth::kTokenHeader;
  static constexpr std::string_view kTtlHeader = "X-aws-ec2-metadata-token-ttl-seconds";
  // Token lifetime bounds (ec2.md §2.1): 1 s to 6 h.
  static constexpr int kMinTtlSeconds = 1;
  static constexpr int kMaxTtlSeconds = 21600;

 private:
  // Token refusal reasons as counter slots: auth::TokenError values, then "missing".
  static constexpr size_t kTokenMissing = 4;

  common::Status Refuse(common::Code code, int http_status, std::string_view log_reason,
                        const model::Instance& instance, const common::Request& request,
                        common::Response& out) const;
  common::Status IssueToken(const model::Instance& instance, const common::Request& request,
                            common::Response& out) const;
  // Applies the token policy; OK when the request may be served, with `v2`
  // set when it carried a valid token.
  common::Status CheckToken(const model::Instance& instance, const common::Request& request,
                            common::Response& out, bool& v2) const;
  // imds_requests_total{version="v1"} and the instance's own series.
  void CountV1(const model::Instance& instance) const;
  common::Status Redirect(std::span<const std::string_view> segments,
                          const common::Request& request, common::Response& out) const;

  // Constant after construction.
  const Options options_;
  const auth::TokenAuthority& tokens_;
  const common::Clock& clock_;
  const Ec2Tree tree_;
  const auth::DocumentSigner* const signer_;
  const CredentialProvider* const credentials_;
  common::MetricsRegistry& metrics_;
  // Tells this flavour's per-thread counter tables from another's (tests
  // build many flavours, possibly at one address).
  const uint64_t generation_;

  // Instances that have their own v1 series (registration only, never on
  // the per-request path once a thread has seen the instance).
  mutable std::mutex v1_series_mu_;
  mutable std::unordered_set<std::string> v1_series_;  // guarded by v1_series_mu_

  // Counters, registered once; Counter is thread-safe.
  common::Counter& requests_v1_;
  common::Counter& requests_v2_;
  common::Counter& tokens_issued_;
  std::array<common::Counter*, 5> tokens_rejected_;  // by TokenError, then kTokenMissing
  common::Counter& put_rejected_ttl_;
  common::Counter& put_rejected_forwarded_;
  common::Counter& put_rejected_versioned_path_;
  common::Counter& put_rejected_method_;
  common::Counter& endpoint_disabled_;
  common::Counter& not_found_;
  common::Counter& method_not_allowed_;
  // [delivery v1/v2][served/unavailable]
  std::array<std::array<common::Counter*, 2>, 2> credential_reads_;
};

}  // namespace openimds::flavour::ec2
