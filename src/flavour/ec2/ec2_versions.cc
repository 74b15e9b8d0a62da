#include "flavour/ec2/ec2_versions.h"

#include <algorithm>

namespace openimds::flavour::ec2 {

int VersionIndex(std::string_view name) {
  if (name == "latest") return kLatestVersion;
  // The dated versions sort as plain strings ("1.0" < "2007-..."), so a binary
  // search over all but "latest" finds them.
  const auto first = kVersions.begin();
  const auto last = kVersions.end() - 1;
  const auto it = std::lower_bound(first, last, name);
  if (it == last || *it != name) return -1;
  return static_cast<int>(it - first);
}

std::span<const std::string_view> DatedVersions(Ec2Dialect dialect) {
  const std::span<const std::string_view> all(kVersions);
  if (dialect == Ec2Dialect::kNova) return all.first(kNovaNewestVersion + 1);
  return all.first(kVersions.size() - 1);
}

int LatestVersion(Ec2Dialect dialect) {
  return dialect == Ec2Dialect::kNova ? kNovaNewestVersion : kLatestVersion;
}

int VersionIndex(std::string_view name, Ec2Dialect dialect) {
  if (name == "latest") return LatestVersion(dialect);
  const int index = VersionIndex(name);
  // Newer dated versions are unknown to Nova: 404, as InvalidMetadataVersion.
  if (dialect == Ec2Dialect::kNova && index > kNovaNewestVersion) return -1;
  return index;
}

std::string_view Ec2DialectName(Ec2Dialect dialect) {
  return dialect == Ec2Dialect::kNova ? "nova" : "aws";
}

bool ParseEc2Dialect(std::string_view text, Ec2Dialect& out) {
  if (text == "aws") {
    out = Ec2Dialect::kAws;
  } else if (text == "nova") {
    out = Ec2Dialect::kNova;
  } else {
    return false;
  }
  return true;
}

}  // namespace openimds::flavour::ec2
