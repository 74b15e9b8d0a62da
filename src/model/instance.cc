#include "model/instance.h"

namespace openimds::model {

Str DefaultArchitecture() {
  static const Str* const kX86_64 = new Str(Str::Interned("x86_64"));
  return *kX86_64;
}

}  // namespace openimds::model
