// Bindings of the postprocess family (filled in by the family's implementation).
#include "bind_common.hpp"

namespace ramh::bind {
void register_postprocess(py::module_& /*m*/) {}
}  // namespace ramh::bind
