// Waiting for a common::Deferred on a thread that may block: a render preview
// run for the admin API, tests. The http core itself never blocks on one
// (http::ResumeDeferred parks the request and keeps serving).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

#include "common/http_message.h"

namespace openimds::common {

// Blocks until `deferred` is ready or its MaxWait() has passed; true when it
// is ready. The ready-callback owns what it touches, so a late call after a
// timeout is harmless.
inline bool WaitReady(Deferred& deferred) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
  };
  auto state = std::make_shared<State>();
  deferred.OnReady([state] {
    std::lock_guard<std::mutex> lock(state->mu);
    state->ready = true;
    state->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(state->mu);
  return state->cv.wait_for(lock, deferred.MaxWait(), [&] { return state->ready; });
}

}  // namespace openimds::common
