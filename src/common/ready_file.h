#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace openimds::common {

// Writes a command's ready file (`serve --ready-file`, `proxy
// --ready-file`): what it bound, for the scripts and tests that wait for the
// file to appear. Written to PATH.tmp and renamed over PATH, so a reader
// never sees a half-written file. Internal, naming the path and the reason,
// when it cannot be written (PATH.tmp is removed then): the caller stops,
// since whoever waits for the file would wait forever.
Status WriteReadyFile(const std::string& path, std::string_view contents);

}  // namespace openimds::common
