#pragma once

#include <boost/json/value.hpp>

namespace openimds::admin {

// JSON Merge Patch (RFC 7396): `target` with `patch` applied.
//
// An object patch merges member by member: a null member deletes that member
// from the target, an object member merges recursively, any other member
// (string, number, bool, array) replaces the target's. A patch that is not an
// object replaces the whole target. A target that is not an object is treated
// as {} when the patch is an object. Pure function; never fails.
boost::json::value MergePatch(boost::json::value target, const boost::json::value& patch);

}  // namespace openimds::admin
