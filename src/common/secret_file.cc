#include "common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace openimds::common {
namespace {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string Octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

Result<std::string> ReadSecretFile(const std::string& path) {
  const std::string what = "secret file " + path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer; it is refused below as not a regular file. No effect on files.
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (raw < 0) {
    const int err = errno;
    const std::string message = "cannot read " + what + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound(message);
    return PermissionDenied(message);
  }
  ScopedFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Internal("cannot read " + what + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument(what + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied(what + " has mode " + Octal(st.st_mode) +
                            ": group or others may access it, and it holds a secret; run "
                            "`chmod 600 " +
                            path + "`");
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return PermissionDenied(what + " is owned by uid " + std::to_string(st.st_uid) +
                            ", neither this process's user (uid " + std::to_string(me) +
                            ") nor root, so that user could change it; run `chown " +
                            std::to_string(me) + " " + path + "`");
  }
  if (st.st_size > static_cast<off_t>(kMaxSecretFileBytes)) {
    return InvalidArgument(what + " is larger than 64 KiB (" + std::to_string(st.st_size) +
                           " bytes): not a secret; check the path");
  }
  // The size may change while we read (or be 0 for a pseudo-file): read at
  // most one byte past the cap, whatever fstat said.
  std::string content;
  char buf[4096];
  while (content.size() <= kMaxSecretFileBytes) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Internal("cannot read " + what + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  if (content.size() > kMaxSecretFileBytes) {
    return InvalidArgument(what + " is larger than 64 KiB: not a secret; check the path");
  }
  size_t begin = 0;
  size_t end = content.size();
  while (begin < end && IsSpace(content[begin])) ++begin;
  while (end > begin && IsSpace(content[end - 1])) --end;
  if (end - begin < kMinSecretFileBytes) {
    return InvalidArgument(
        what + " holds " + std::to_string(end - begin) + " bytes; a secret needs at least " +
        std::to_string(kMinSecretFileBytes) + " (use a long random one: `openssl rand -hex 32`)");
  }
  return content.substr(begin, end - begin);
}

}  // namespace openimds::common
