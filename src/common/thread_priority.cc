#include "common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace openimds::common {

void LowerCurrentThreadPriority(int increment) {
  // On Linux PRIO_PROCESS with a thread id sets that thread's nice value
  // alone (setpriority(2), "BUGS": threads do not share it).
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, tid);
  if (current == -1 && errno != 0) return;
  ::setpriority(PRIO_PROCESS, tid, current + increment);
}

}  // namespace openimds::common
