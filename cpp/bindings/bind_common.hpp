// Shared helpers of the pybind11 module ramh_rt._core: array conversion (NumPy and CUDA arrays <-> ramh::Tensor),
// the DeviceArray type, and the registration functions of each kernel family. No kernel logic lives here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ramh/device.hpp"
#include "ramh/tensor.hpp"

namespace ramh::bind {
namespace py = pybind11;

// ---- dtypes -------------------------------------------------------------------------------------------------------
DType dtype_from_numpy(const py::dtype& dt, const char* what);
py::dtype numpy_dtype(DType t);
// "float32" / "float16" / numpy dtype / None(default) -> DType.
DType dtype_from_arg(const py::handle& obj, const char* what, DType default_dtype);

// ---- device arrays --------------------------------------------------------------------------------------------------
// A dense CUDA array owned by the core's pool (or a view of another library's CUDA memory kept alive by `owner`).
// Python sees it through __cuda_array_interface__ (v3) and __dlpack__, so CuPy, PyTorch, ONNX Runtime IO binding and
// TensorRT can use it by pointer.
struct DeviceArray {
  std::shared_ptr<DeviceBuffer> buffer;
  py::object owner;
  Tensor view;
  void* stream = nullptr;  // the stream the producing kernel ran on

  static std::shared_ptr<DeviceArray> empty(const std::vector<int64_t>& shape, DType dtype, int device_id,
                                            void* stream);
};

// Bytes of a dense array of `shape` and `dtype`; ValueError for negative sizes or a count that does not fit.
std::size_t array_nbytes(const std::vector<int64_t>& shape, DType dtype);

// An argument resolved to a Tensor; `keep` holds whatever object owns the memory for the duration of the call.
struct ArrayArg {
  Tensor tensor;
  py::object keep;
  bool on_device() const { return tensor.device == Device::CUDA; }
};

// NumPy (or anything np.asarray accepts) -> C-contiguous host Tensor of one of the allowed dtypes.
// Device arrays (DeviceArray, or objects with __cuda_array_interface__) -> device Tensor view.
ArrayArg array_arg(const py::handle& obj, const char* what);
bool is_device_array(const py::handle& obj);

// Host output: a new NumPy array; the returned Tensor points into it.
py::array new_host_array(const std::vector<int64_t>& shape, DType dtype, Tensor* view);

// Device output on the same device as `like`, allocated from the pool on the core's default stream.
std::shared_ptr<DeviceArray> new_device_array(const std::vector<int64_t>& shape, DType dtype, const Tensor& like);

// The core's stream for a device; ops run there and synchronise before returning to Python.
void* core_stream(int device_id);

// The stream an op reading `arg` runs on: the core's stream of its device, or nullptr (host work) for host data.
void* op_stream(const ArrayArg& arg);

// An op's output where its input `like` lives: a DeviceArray on the same device, or a new NumPy array; `view` is set
// to the output's Tensor, into which the op writes.
py::object new_output(const std::vector<int64_t>& shape, DType dtype, const ArrayArg& like, Tensor* view);

// A string option -> its enum value. ValueError "<what> must be 'a' or 'b', got '<value>'" (the names of every
// choice, in order) when `value` is none of them.
template <class E>
E choice_arg(const std::string& value, const char* what, std::initializer_list<std::pair<const char*, E>> choices) {
  std::string names;
  std::size_t i = 0;
  for (const auto& c : choices) {
    if (value == c.first) return c.second;
    names += (i == 0 ? "'" : i + 1 == choices.size() ? " or '" : ", '") + std::string(c.first) + "'";
    ++i;
  }
  fail(what, " must be ", names, ", got '", value, "'");
}

// ---- family registration (one bind_<family>.cpp each) -----------------------------------------------------------
void register_device(py::module_& m);
void register_preprocess(py::module_& m);
void register_postprocess(py::module_& m);
void register_roi(py::module_& m);
void register_quantify(py::module_& m);

}  // namespace ramh::bind
