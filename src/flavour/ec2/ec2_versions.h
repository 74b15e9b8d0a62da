#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace openimds::flavour::ec2 {

// The metadata build versions EC2 serves at "/", oldest first, "latest" last.
// The union of the versions AWS documents or that were seen on real instances
// (ec2.md §1.2); capture the exact list from a live instance before relying on
// one that is missing here.
inline constexpr std::array<std::string_view, 33> kVersions = {
    "1.0",        "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
    "2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12",
    "2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02",
    "2016-11-15", "2016-11-30", "2018-03-28", "2018-05-23", "2018-08-17", "2018-09-24",
    "2018-11-29", "2019-10-01", "2020-08-24", "2020-10-27", "2020-11-01", "2021-01-03",
    "2021-03-23", "2021-07-15", "latest",
};

// Versions are compared by index: "latest" has the highest, so it serves
// every category.
inline constexpr int kLatestVersion = static_cast<int>(kVersions.size()) - 1;

// Which EC2-style metadata service a deployment imitates (`serve
// --ec2-versions aws|nova`). Both are rendered by the same tree and category
// table; a dialect only chooses the version list, what "latest" means and
// which rows of the table exist from which version.
enum class Ec2Dialect : uint8_t {
  // AWS: every version in kVersions, "latest" newest, the whole category table.
  kAws,
  // nova-api-metadata (openstack.md §1.2, §1.4; nova/api/metadata/base.py
  // VERSIONS and get_ec2_metadata): 1.0 .. 2009-04-04, "latest" serves
  // 2009-04-04's content, and only the keys Nova's EC2 tree has.
  kNova,
};

// Nova's newest EC2 version. Nova's VERSIONS list is exactly kVersions'
// first kNovaNewestVersion + 1 entries, so indexes mean the same in both
// dialects and one tree serves both.
inline constexpr int kNovaNewestVersion = 8;
static_assert(kVersions[kNovaNewestVersion] == "2009-04-04");

// The dated versions `dialect` lists at "/", oldest first ("latest", which
// every dialect lists last, is not included).
std::span<const std::string_view> DatedVersions(Ec2Dialect dialect);

// The version index "latest" stands for in `dialect`.
int LatestVersion(Ec2Dialect dialect);

// The index of `name` in kVersions, or -1 for an unknown version.
// Allocation-free; safe for concurrent use.
int VersionIndex(std::string_view name);

// As above, but -1 also for versions `dialect` does not serve, and "latest"
// is LatestVersion(dialect).
int VersionIndex(std::string_view name, Ec2Dialect dialect);

// "aws" / "nova". ParseEc2Dialect returns false (and leaves `out`) for
// anything else.
std::string_view Ec2DialectName(Ec2Dialect dialect);
bool ParseEc2Dialect(std::string_view text, Ec2Dialect& out);

}  // namespace openimds::flavour::ec2
