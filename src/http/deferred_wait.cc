#include "http/deferred_wait.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <mutex>

namespace openimds::http {
namespace {

namespace asio = boost::asio;

// Shared between the waiting coroutine and the ready-callback, which may run
// on another thread and may outlive the wait (a fetch that completes after
// the deadline, or after the server stopped).
struct Wake {
  std::mutex mu;
  asio::steady_timer* timer = nullptr;  // guarded by mu; null once the waiter left
  bool fired = false;                   // guarded by mu
};

// Detaches the callback from the timer when the wait ends, also when the
// coroutine frame is destroyed mid-wait (io_context torn down at shutdown).
struct Detach {
  std::shared_ptr<Wake> wake;
  ~Detach() {
    std::lock_guard<std::mutex> lock(wake->mu);
    wake->timer = nullptr;
  }
};

// Resets Request::resumed however the second call ends.
struct ResumedFlag {
  common::Request& request;
  ResumedFlag(common::Request& r, std::shared_ptr<const common::Deferred> from) : request(r) {
    request.resumed = true;
    request.resumed_from = std::move(from);
  }
  ~ResumedFlag() {
    request.resumed = false;
    request.resumed_from.reset();
  }
};

}  // namespace

std::chrono::milliseconds DeferralBound(const common::Deferred& deferred) {
  return std::clamp(deferred.MaxWait(), std::chrono::milliseconds(0), kMaxDeferral);
}

asio::awaitable<void> ResumeDeferred(Handler& handler, common::Request& request,
                                     common::Response& response) {
  std::shared_ptr<common::Deferred> pending = std::move(response.deferred);
  response.deferred.reset();
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, DeferralBound(*pending));
  auto wake = std::make_shared<Wake>();
  wake->timer = &timer;
  Detach detach{wake};
  pending->OnReady([wake, executor]() {
    std::lock_guard<std::mutex> lock(wake->mu);
    wake->fired = true;
    if (wake->timer == nullptr) return;
    asio::post(executor, [wake]() {
      std::lock_guard<std::mutex> lock(wake->mu);
      if (wake->timer != nullptr) wake->timer->cancel();
    });
  });
  bool fired = false;
  {
    std::lock_guard<std::mutex> lock(wake->mu);
    fired = wake->fired;
  }
  // Not fired yet: the wake-up, if it comes, is posted to this executor and
  // so runs only after async_wait below has been started (one thread).
  if (!fired) co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));

  response.Clear();
  {
    ResumedFlag flag(request, pending);
    handler.Handle(request, response);
  }
  if (response.deferred) {
    response.Clear();
    response.status = 503;
    response.content_type = "text/plain";
    response.body = "response not ready; retry\n";
    response.AddHeader("Retry-After", "1");
  }
}

}  // namespace openimds::http
