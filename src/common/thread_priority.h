#pragma once

namespace openimds::common {

// How much lower than the guest-facing I/O threads the write side runs (the
// admin thread, the store's write queue, the change-feed follower): a nice
// increment. On a machine with fewer cores than busy threads the scheduler
// then gives guest requests the CPU first, so a burst of writes delays
// writes, not guests.
inline constexpr int kBackgroundNice = 10;

// Lowers the CPU priority of the calling thread (Linux: its own nice value)
// by `increment`. Best effort: a failure (e.g. a seccomp filter) leaves the
// thread as it was; there is nothing a caller could do about it.
void LowerCurrentThreadPriority(int increment = kBackgroundNice);

}  // namespace openimds::common
