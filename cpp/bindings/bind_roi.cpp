// Bindings of the roi family: ramh_rt._core.crop_rois and ramh_rt._core.paste_rois.
// Documented for users in python/ramh_rt/ops/roi.py.
#include <string>

#include "bind_common.hpp"
#include "ramh/roi.hpp"

namespace ramh::bind {
namespace {

// N x 5 host array (cx, cy, w, h, angle_deg) -> boxes; an empty sequence ([] or shape (0,)) is N = 0.
std::vector<RotatedBox> boxes_arg(const py::object& obj) {
  if (is_device_array(obj)) fail("boxes must be host data (NumPy or a sequence), got a CUDA array");
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

py::object new_output(const std::vector<int64_t>& shape, DType dtype, const ArrayArg& like, Tensor* view) {
  if (like.on_device()) {
    auto da = new_device_array(shape, dtype, like.tensor);
    *view = da->view;
    return py::cast(da);
  }
  return new_host_array(shape, dtype, view);
}

}  // namespace

void register_roi(py::module_& m) {
  m.def(
      "crop_rois",
      [](py::object image, py::object boxes, int64_t out_h, int64_t out_w, const std::string& interpolation,
         double fill) {
        Interpolation interp;
        if (interpolation == "bilinear")
          interp = Interpolation::Bilinear;
        else if (interpolation == "nearest")
          interp = Interpolation::Nearest;
        else
          fail("interpolation must be 'bilinear' or 'nearest', got '", interpolation, "'");
        ArrayArg img = array_arg(image, "image");
        std::vector<RotatedBox> bx = boxes_arg(boxes);
        const auto shape = crop_rois_out_shape(img.tensor, static_cast<int64_t>(bx.size()), out_h, out_w);
        Tensor out;
        py::object result = new_output(shape, crop_rois_out_dtype(img.tensor, interp), img, &out);
        {
          py::gil_scoped_release release;
          void* stream = img.on_device() ? core_stream(img.tensor.device_id) : nullptr;
          crop_rois(img.tensor, bx, interp, fill, out, stream);
        }
        return result;
      },
      py::arg("image"), py::arg("boxes"), py::arg("out_h"), py::arg("out_w"), py::arg("interpolation"),
      py::arg("fill"), "Crop oriented ROIs; see ramh_rt.ops.crop_rois.");

  m.def(
      "paste_rois",
      [](py::object rois, py::object boxes, int64_t out_h, int64_t out_w, const std::string& reduce, double fill) {
        PasteReduce red;
        if (reduce == "max")
          red = PasteReduce::Max;
        else if (reduce == "or")
          red = PasteReduce::Or;
        else
          fail("reduce must be 'max' or 'or', got '", reduce, "'");
        ArrayArg r = array_arg(rois, "rois");
        std::vector<RotatedBox> bx = boxes_arg(boxes);
        Tensor out;
        py::object result = new_output(paste_rois_out_shape(r.tensor, out_h, out_w), r.tensor.dtype, r, &out);
        {
          py::gil_scoped_release release;
          void* stream = r.on_device() ? core_stream(r.tensor.device_id) : nullptr;
          paste_rois(r.tensor, bx, red, fill, out, stream);
        }
        return result;
      },
      py::arg("rois"), py::arg("boxes"), py::arg("out_h"), py::arg("out_w"), py::arg("reduce"), py::arg("fill"),
      "Paste ROI maps back into an image; see ramh_rt.ops.paste_rois.");
}

}  // namespace ramh::bind
