#pragma once

namespace openimds::common {

// The process's heap policy (glibc malloc), for a server that holds a large
// long-lived catalog and passes through large short-lived buffers (import
// bodies, parsed pages): buffers of 1 MiB or more are always their own
// mappings and go back to the system when freed. glibc would otherwise raise
// that threshold after the first such buffer is freed, after which every
// later one is carved out of the heap and, once freed, stays resident for
// good (at a million instances an import left a gigabyte so). Call once at
// start, before threads start. Does nothing on other C libraries.
void SetHeapPolicy();

// Returns the heap's free pages to the system (malloc_trim): after a large
// batch of work whose garbage is spread through the heap. Takes some
// milliseconds on a heap of gigabytes; call from a background thread.
void ReleaseFreeHeap();

}  // namespace openimds::common
