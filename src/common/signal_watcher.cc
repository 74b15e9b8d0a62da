#include "common/signal_watcher.h"

#include <pthread.h>

#include "common/log.h"

namespace openimds::common {

SignalWatcher::SignalWatcher(std::string component) : component_(std::move(component)) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  sigaddset(&set_, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

SignalWatcher::~SignalWatcher() { Stop(); }

void SignalWatcher::Start(Handlers handlers) {
  thread_ = std::thread([this, handlers = std::move(handlers)] {
    while (true) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (sig == SIGUSR2) {
        // Our own wake-up at Stop(); anyone else's is not a reason to stop
        // listening for SIGTERM.
        if (stopping_.load()) return;
        continue;
      }
      if (sig == SIGHUP) {
        if (handlers.reload) {
          handlers.reload();
        } else {
          LogInfo(component_, "received SIGHUP; nothing to reload");
        }
        continue;
      }
      LogInfo(component_, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                              ", draining connections");
      if (handlers.stop) handlers.stop();
      return;
    }
  });
}

void SignalWatcher::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  pthread_kill(thread_.native_handle(), SIGUSR2);
  thread_.join();
}

}  // namespace openimds::common
