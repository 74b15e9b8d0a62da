#pragma once

#include <string_view>

namespace openimds::common {

// Names the calling thread (Linux: at most 15 bytes, the rest is cut), so
// `top -H`, `ps -L`, perf and gdb tell the I/O threads, the store's writer and
// the feed follower apart. Best effort: nothing happens on failure.
void NameCurrentThread(std::string_view name);

}  // namespace openimds::common
