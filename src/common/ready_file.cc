#include "common/ready_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace openimds::common {

Status WriteReadyFile(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp";
  auto failed = [&](const std::string& step, int err) {
    ::unlink(tmp.c_str());
    return Internal("cannot write the ready file " + path + " (" + step + " " + tmp +
                    "): " + std::strerror(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed("open", errno);
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return failed("write", err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return failed("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("rename", errno);
  return Status::Ok();
}

}  // namespace openimds::common
