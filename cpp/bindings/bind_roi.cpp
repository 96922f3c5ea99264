// Bindings of the roi family (filled in by the family's implementation).
#include "bind_common.hpp"

namespace ramh::bind {
void register_roi(py::module_& /*m*/) {}
}  // namespace ramh::bind
