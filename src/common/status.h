#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace openimds::common {

// The closed vocabulary of outcomes that cross module boundaries.
// Mapped to HTTP in exactly one place (HttpStatusFor in status.cc).
enum class Code {
  kOk = 0,
  kNotFound,            // 404
  kInvalidArgument,     // 400
  kUnauthenticated,     // 401
  kPermissionDenied,    // 403
  kMethodNotAllowed,    // 405: a flavour's path exists but not for this method
  kConflict,            // 409: a uniqueness rule (e.g. one address per network) would break
  kFailedPrecondition,  // 412: optimistic concurrency (If-Match) lost
  kPayloadTooLarge,     // 413
  kResourceExhausted,   // 429: rate or connection limits
  kInsufficientStorage, // 507: the store's disk is full
  kUnavailable,         // 503: dependency away (store read-only, upstream down)
  kInternal,            // 500: a bug or an unexpected library failure
};

// A Code plus a human-readable message meant for the caller (never a secret).
// Cheap to copy when ok (empty message).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "NotFound: no instance i-123" — for logs and error bodies.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
inline Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
inline Status Unauthenticated(std::string m) { return Status(Code::kUnauthenticated, std::move(m)); }
inline Status PermissionDenied(std::string m) { return Status(Code::kPermissionDenied, std::move(m)); }
inline Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
inline Status FailedPrecondition(std::string m) {
  return Status(Code::kFailedPrecondition, std::move(m));
}
inline Status ResourceExhausted(std::string m) {
  return Status(Code::kResourceExhausted, std::move(m));
}
inline Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
inline Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

// Stable lowercase name of a code ("not_found"), used in JSON error bodies and metrics labels.
std::string_view CodeName(Code code);

// The one mapping from Code to an HTTP status code.
int HttpStatusFor(Code code);

}  // namespace openimds::common
