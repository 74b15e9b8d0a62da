#include "admin/merge_patch.h"

#include <boost/json/object.hpp>

namespace openimds::admin {

boost::json::value MergePatch(boost::json::value target, const boost::json::value& patch) {
  const boost::json::object* patch_object = patch.if_object();
  if (patch_object == nullptr) return patch;
  if (!target.is_object()) target = boost::json::object();
  boost::json::object& out = target.as_object();
  for (const auto& member : *patch_object) {
    if (member.value().is_null()) {
      out.erase(member.key());
      continue;
    }
    // Recursion depth is bounded by the patch's nesting, which the JSON parser
    // already caps (Boost.JSON's default max_depth of 32).
    auto it = out.find(member.key());
    boost::json::value existing = it == out.end() ? boost::json::value() : std::move(it->value());
    out[member.key()] = MergePatch(std::move(existing), member.value());
  }
  return target;
}

}  // namespace openimds::admin
