// Bindings of the roi family: ramh_rt._core.crop_rois and ramh_rt._core.paste_rois.
// Documented for users in python/ramh_rt/ops/roi.py.
#include <string>

#include "bind_common.hpp"
#include "ramh/roi.hpp"

namespace ramh::bind {
namespace {

// N x 5 float32 boxes on a CUDA device (as quantify_erosions takes them): copied to the host (N x 20 bytes) after
// the producer's work, then read like host boxes (float32 -> double is exact).
std::vector<RotatedBox> device_boxes_arg(const py::object& obj) {
  ArrayArg a = array_arg(obj, "boxes");
  if (a.tensor.dtype != DType::F32) fail("boxes on a CUDA device must be float32, got ", dtype_name(a.tensor.dtype));
  const bool empty = a.tensor.ndim() == 1 && a.tensor.numel() == 0;
  if (!empty && (a.tensor.ndim() != 2 || a.tensor.dim(1) != 5))
    fail("boxes must have shape N x 5 (cx, cy, w, h, angle_deg), got shape ", a.tensor.shape_str());
  std::vector<float> host(static_cast<std::size_t>(a.tensor.numel()));
  if (!host.empty()) {
    py::gil_scoped_release release;
    void* stream = core_stream(a.tensor.device_id);
    copy_async(host.data(), a.tensor.data, a.tensor.nbytes(), stream);
    stream_synchronize(stream);
  }
  std::vector<RotatedBox> out(empty ? 0 : static_cast<std::size_t>(a.tensor.dim(0)));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const float* r = &host[5 * i];
    out[i] = {r[0], r[1], r[2], r[3], r[4]};
  }
  return out;
}

// N x 5 array (cx, cy, w, h, angle_deg) -> boxes; an empty sequence ([] or shape (0,)) is N = 0. Host data of any
// float type, or float32 on a CUDA device.
std::vector<RotatedBox> boxes_arg(const py::object& obj) {
  if (is_device_array(obj)) return device_boxes_arg(obj);
  auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!arr) fail("boxes could not be read as a float array of shape N x 5");
  if (arr.ndim() == 1 && arr.size() == 0) return {};
  if (arr.ndim() != 2 || arr.shape(1) != 5) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) s += (i ? ", " : "") + std::to_string(arr.shape(i));
    s += arr.ndim() == 1 ? ",)" : ")";
    fail("boxes must have shape N x 5 (cx, cy, w, h, angle_deg), got shape ", s);
  }
  std::vector<RotatedBox> out(static_cast<std::size_t>(arr.shape(0)));
  auto a = arr.unchecked<2>();
  for (py::ssize_t i = 0; i < arr.shape(0); ++i) out[i] = {a(i, 0), a(i, 1), a(i, 2), a(i, 3), a(i, 4)};
  return out;
}

}  // namespace

void register_roi(py::module_& m) {
  m.def(
      "crop_rois",
      [](py::object image, py::object boxes, int64_t out_h, int64_t out_w, const std::string& interpolation,
         double fill) {
        const auto interp = choice_arg<Interpolation>(interpolation, "interpolation",
                                                      {{"bilinear", Interpolation::Bilinear},
                                                       {"nearest", Interpolation::Nearest}});
        ArrayArg img = array_arg(image, "image");
        std::vector<RotatedBox> bx = boxes_arg(boxes);
        const auto shape = crop_rois_out_shape(img.tensor, static_cast<int64_t>(bx.size()), out_h, out_w);
        Tensor out;
        py::object result = new_output(shape, crop_rois_out_dtype(img.tensor, interp), img, &out);
        {
          py::gil_scoped_release release;
          void* stream = op_stream(img);
          crop_rois(img.tensor, bx, interp, fill, out, stream);
        }
        return result;
      },
      py::arg("image"), py::arg("boxes"), py::arg("out_h"), py::arg("out_w"), py::arg("interpolation"),
      py::arg("fill"), "Crop oriented ROIs; see ramh_rt.ops.crop_rois.");

  m.def(
      "paste_rois",
      [](py::object rois, py::object boxes, int64_t out_h, int64_t out_w, const std::string& reduce, double fill) {
        const auto red =
            choice_arg<PasteReduce>(reduce, "reduce", {{"max", PasteReduce::Max}, {"or", PasteReduce::Or}});
        ArrayArg r = array_arg(rois, "rois");
        std::vector<RotatedBox> bx = boxes_arg(boxes);
        Tensor out;
        py::object result = new_output(paste_rois_out_shape(r.tensor, out_h, out_w), r.tensor.dtype, r, &out);
        {
          py::gil_scoped_release release;
          void* stream = op_stream(r);
          paste_rois(r.tensor, bx, red, fill, out, stream);
        }
        return result;
      },
      py::arg("rois"), py::arg("boxes"), py::arg("out_h"), py::arg("out_w"), py::arg("reduce"), py::arg("fill"),
      "Paste ROI maps back into an image; see ramh_rt.ops.paste_rois.");
}

}  // namespace ramh::bind
