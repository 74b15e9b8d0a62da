#include "flavour/ec2/ec2_path.h"

namespace openimds::flavour::ec2 {

bool ParseEc2Path(std::string_view path, size_t max_bytes, Ec2Path& out) {
  out.size = 0;
  out.trailing_slash = false;
  if (path.empty() || path.size() > max_bytes || path.front() != '/') return false;
  if (path.find('%') != std::string_view::npos) return false;
  out.trailing_slash = path.size() > 1 && path.back() == '/';
  size_t pos = 0;
  while (pos < path.size()) {
    const size_t slash = path.find('/', pos);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > pos) {
      const std::string_view segment = path.substr(pos, end - pos);
      if (segment == "." || segment == "..") return false;
      if (out.size == kMaxSegments) return false;
      out.segments_storage[out.size++] = segment;
    }
    pos = end + 1;
  }
  return true;
}

}  // namespace openimds::flavour::ec2
