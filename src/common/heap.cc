#include "common/heap.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace openimds::common {

void SetHeapPolicy() {
#if defined(__GLIBC__)
  // Setting it at all turns the dynamic adjustment off (mallopt(3)).
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

void ReleaseFreeHeap() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace openimds::common
