// Bindings of the quantify family (filled in by the family's implementation).
#include "bind_common.hpp"

namespace ramh::bind {
void register_quantify(py::module_& /*m*/) {}
}  // namespace ramh::bind
