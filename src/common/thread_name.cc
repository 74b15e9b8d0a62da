#include "common/thread_name.h"

#include <pthread.h>

#include <algorithm>
#include <cstring>

namespace openimds::common {

void NameCurrentThread(std::string_view name) {
  char buf[16] = {};
  std::memcpy(buf, name.data(), std::min(name.size(), sizeof(buf) - 1));
  ::pthread_setname_np(::pthread_self(), buf);
}

}  // namespace openimds::common
