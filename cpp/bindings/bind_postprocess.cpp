// Bindings of the postprocess family: ramh_rt._core.postprocess_masks (documented in ramh_rt/ops/postprocess.py).
#include <cstring>

#include "bind_common.hpp"
#include "ramh/postprocess.hpp"

namespace ramh::bind {

void register_postprocess(py::module_& m) {
  PYBIND11_NUMPY_DTYPE(InstanceRecord, batch, channel, index, area, bbox, centroid, orientation, major_axis_length,
                       minor_axis_length, mean_score);
  m.attr("INSTANCE_DTYPE") = py::dtype::of<InstanceRecord>();
  m.def(
      "postprocess_masks",
      [](py::object logits, int mode, std::vector<float> thresholds, std::vector<int> keep, int64_t min_area,
         bool fill_holes) {
        ArrayArg in = array_arg(logits, "logits");
        PostprocessParams params;
        params.mode = static_cast<MaskMode>(mode);
        params.thresholds = std::move(thresholds);
        params.keep.clear();
        for (int k : keep) params.keep.push_back(static_cast<KeepMode>(k));
        params.min_area = min_area;
        params.fill_holes = fill_holes;

        Tensor masks;
        py::object masks_obj = new_output(in.tensor.shape, DType::U8, in, &masks);
        std::vector<InstanceRecord> records;
        {
          py::gil_scoped_release release;
          void* stream = op_stream(in);
          records = postprocess_masks(in.tensor, masks, params, stream);
          if (stream) stream_synchronize(stream);
        }
        py::array_t<InstanceRecord> table(static_cast<py::ssize_t>(records.size()));
        if (!records.empty())
          std::memcpy(table.mutable_data(), records.data(), records.size() * sizeof(InstanceRecord));
        return py::make_tuple(masks_obj, table);
      },
      py::arg("logits"), py::arg("mode"), py::arg("thresholds"), py::arg("keep"), py::arg("min_area"),
      py::arg("fill_holes"),
      "Low-level entry of ramh_rt.ops.postprocess_masks: mode 0 multilabel / 1 multiclass, thresholds (1 or C "
      "floats), keep (1 or C codes: 0 largest, 1 all). Returns (masks, instance table).");
}

}  // namespace ramh::bind
