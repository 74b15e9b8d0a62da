#pragma once

#include <cstddef>
#include <string>

#include "common/result.h"

namespace openimds::common {

// The one reader of files that hold a secret: the admin bearer token (serve
// and the `openimds instance` client), proxy key files, the Neutron shared
// secret, the admin TLS key and the identity-document signing keys. One set
// of rules for all of them, so an operator learns them once.
//
// Shortest secret accepted, after surrounding whitespace is removed: an HMAC
// key or bearer token shorter than this falls to an offline guess from one
// captured signature. `openssl rand -hex 32` gives 64.
inline constexpr size_t kMinSecretFileBytes = 16;
// Largest file read. A secret (a token, a few key lines, a PEM key) is a few
// KiB at most; the cap stops a wrong path (a log, a device) from being read.
inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// Reads the secret in the file at `path`. The rules, in the order checked:
//  - a symbolic link is followed (Kubernetes mounts secrets as links into a
//    `..data` directory); every check applies to the file it leads to, and
//    is made on the open descriptor, so the file cannot be swapped between
//    check and read;
//  - it must be a regular file (not a directory, FIFO or device);
//  - group and others have no permission bits at all (mode 0600 or 0400);
//  - it is owned by this process's effective user or by root: any other
//    user could rewrite it;
//  - it is at most kMaxSecretFileBytes;
//  - surrounding ASCII whitespace (spaces, tabs, CR, LF: the newline `echo`
//    or an editor adds) is removed; nothing inside is touched;
//  - what remains is at least kMinSecretFileBytes long.
// Errors: NotFound (no such file), PermissionDenied (cannot be opened, or
// the mode or owner rule), InvalidArgument (not a regular file, too large,
// too short), Internal (a read error). Every message names `path` and, for
// the mode and owner rules, the fix (`chmod 600 PATH`, `chown UID PATH`);
// none holds a byte of the file.
Result<std::string> ReadSecretFile(const std::string& path);

}  // namespace openimds::common
