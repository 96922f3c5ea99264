// Bindings of the preprocess family (filled in by the family's implementation).
#include "bind_common.hpp"

namespace ramh::bind {
void register_preprocess(py::module_& /*m*/) {}
}  // namespace ramh::bind
