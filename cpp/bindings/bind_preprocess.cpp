// Bindings of the preprocess family: ramh_rt._core.preprocess and ramh_rt._core.letterbox_geometry.
// Documented for users in python/ramh_rt/ops/preprocess.py.
#include <optional>

#include "bind_common.hpp"
#include "ramh/preprocess.hpp"

namespace ramh::bind {

void register_preprocess(py::module_& m) {
  m.def(
      "letterbox_geometry",
      [](int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
        const LetterboxGeometry g = letterbox_geometry(in_h, in_w, out_h, out_w);
        py::dict d;
        d["in_hw"] = py::make_tuple(g.in_h, g.in_w);
        d["out_hw"] = py::make_tuple(g.out_h, g.out_w);
        d["resized_hw"] = py::make_tuple(g.new_h, g.new_w);
        d["pad_x"] = g.pad_x;
        d["pad_y"] = g.pad_y;
        d["scale_x"] = g.scale_x;
        d["scale_y"] = g.scale_y;
        return d;
      },
      py::arg("in_h"), py::arg("in_w"), py::arg("out_h"), py::arg("out_w"),
      "Letterbox placement of an in_h x in_w image on an out_h x out_w canvas (see ramh_rt.ops.preprocess).");

  m.def(
      "preprocess",
      [](py::object image, int64_t out_h, int64_t out_w, py::object window, py::object dtype, double percentile_lo,
         double percentile_hi, float mean, float std_, std::optional<float> pad_value, bool antialias) {
        ArrayArg img = array_arg(image, "image");
        PreprocessParams p;
        p.out_h = out_h;
        p.out_w = out_w;
        p.percentile_lo = percentile_lo;
        p.percentile_hi = percentile_hi;
        p.mean = mean;
        p.std = std_;
        p.pad_value = pad_value;
        p.antialias = antialias;
        const DType out_dtype = dtype_from_arg(dtype, "dtype", DType::F32);
        if (out_dtype != DType::F32 && out_dtype != DType::F16)
          fail("dtype must be float32 or float16, got ", dtype_name(out_dtype));
        const std::vector<int64_t> shape = preprocess_out_shape(img.tensor, p);

        py::array win_arr;
        Tensor win;
        if (!window.is_none()) {
          win_arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(window);
          if (!win_arr) fail("window could not be read as a float32 array");
          win = Tensor(win_arr.mutable_data(), DType::F32,
                       std::vector<int64_t>(win_arr.shape(), win_arr.shape() + win_arr.ndim()));
        }
        std::vector<float> used(static_cast<std::size_t>(2 * shape[0]));

        Tensor out;
        py::object out_obj = new_output(shape, out_dtype, img, &out);
        {
          py::gil_scoped_release release;
          void* stream = op_stream(img);
          preprocess(img.tensor, window.is_none() ? nullptr : &win, p, out, used.data(), stream);
        }
        Tensor used_view;
        py::array used_arr = new_host_array({shape[0], 2}, DType::F32, &used_view);
        std::copy(used.begin(), used.end(), used_view.ptr<float>());
        return py::make_tuple(out_obj, used_arr);
      },
      py::arg("image"), py::arg("out_h"), py::arg("out_w"), py::arg("window"), py::arg("dtype"),
      py::arg("percentile_lo"), py::arg("percentile_hi"), py::arg("mean"), py::arg("std"), py::arg("pad_value"),
      py::arg("antialias"),
      "Window, normalise and letterbox-resize a batch of images; returns (N x 1 x out_h x out_w array, N x 2 windows)."
      " See ramh_rt.ops.preprocess.");
}

}  // namespace ramh::bind
