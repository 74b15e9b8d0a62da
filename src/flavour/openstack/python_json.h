#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace openimds::flavour::openstack {

// Appends `value` to `out` exactly as Python's json.dumps(value) spells it
// with its defaults (what Nova's jsonutils.dump_as_bytes produces):
// ", " and ": " separators, object members in insertion order, non-ASCII
// escaped as \uXXXX (surrogate pairs above U+FFFF, lower-case hex), control
// characters as \n \r \t \b \f or \u00XX. Byte-identical output lets clients
// that hash or diff documents (and our conformance tool) compare with Nova.
// Integers only (the model has no floating-point fields); a double is
// written with Python's repr only approximately (shortest round-trip form).
void AppendPythonJson(const boost::json::value& value, std::string& out);

}  // namespace openimds::flavour::openstack
