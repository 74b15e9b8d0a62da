#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>

#include "common/http_message.h"
#include "http/handler.h"

namespace openimds::http {

// Upper bound on any deferral, whatever a Deferred's MaxWait() says: a guest
// connection is never parked longer than this on behalf of its handler.
inline constexpr std::chrono::milliseconds kMaxDeferral{60'000};

// How long ResumeDeferred waits for `deferred`: MaxWait() clamped to
// [0, kMaxDeferral].
std::chrono::milliseconds DeferralBound(const common::Deferred& deferred);

// The session's half of common::Deferred. `response.deferred` is set: waits
// (co_await, the thread keeps serving other connections) until it is ready
// or DeferralBound() has passed, then clears `response` and calls `handler`
// once more for the same `request` with request.resumed = true (reset to
// false afterwards, also when Handle throws). If the handler defers again,
// the response becomes 503 with Retry-After: 1 (one deferral per request).
//
// Must run on a single-threaded io_context (the server's workers): the
// ready-callback posts the wake-up to the awaiting coroutine's executor, and
// that ordering relies on one thread per executor. `request`'s views must
// stay valid across the wait (the session keeps its parsed request until the
// response is written). Allocates (a timer and a small wake-up block): only
// deferred requests pay for it.
boost::asio::awaitable<void> ResumeDeferred(Handler& handler, common::Request& request,
                                            common::Response& response);

}  // namespace openimds::http
