// Bindings of the quantify family: ramh_rt._core.quantify_erosions (documented in ramh_rt/ops/quantify.py).
#include <cstring>

#include "bind_common.hpp"
#include "ramh/quantify.hpp"

namespace ramh::bind {

void register_quantify(py::module_& m) {
  PYBIND11_NUMPY_DTYPE(ErosionRecord, eroded_roi_px, eroded_px, eroded_mm2, bone_roi_px, bone_px, eroded_fraction,
                       lesions, largest_lesion_roi_px, largest_lesion_px, mean_probability);
  m.attr("EROSION_DTYPE") = py::dtype::of<ErosionRecord>();
  m.def(
      "quantify_erosions",
      [](py::object erosion, py::object bone_masks, py::object boxes, std::vector<double> spacing_mm,
         float threshold, int64_t min_lesion_px) {
        ArrayArg e = array_arg(erosion, "erosion");
        ArrayArg b = array_arg(bone_masks, "bone_masks");
        ArrayArg bx = array_arg(boxes, "boxes");
        QuantifyParams params;
        params.threshold = threshold;
        params.min_lesion_px = min_lesion_px;
        std::vector<ErosionRecord> records;
        {
          py::gil_scoped_release release;
          void* stream = op_stream(e);
          records = quantify_erosions(e.tensor, b.tensor, bx.tensor, spacing_mm, params, stream);
          if (stream) stream_synchronize(stream);
        }
        py::array_t<ErosionRecord> table(static_cast<py::ssize_t>(records.size()));
        if (!records.empty())
          std::memcpy(table.mutable_data(), records.data(), records.size() * sizeof(ErosionRecord));
        return table;
      },
      py::arg("erosion"), py::arg("bone_masks"), py::arg("boxes"), py::arg("spacing_mm"), py::arg("threshold"),
      py::arg("min_lesion_px"),
      "Low-level entry of ramh_rt.ops.quantify_erosions (spacing_mm: one value per ROI, NaN = unknown). "
      "Returns the erosion table.");
}

}  // namespace ramh::bind
