#include "bind_common.hpp"

#include <limits>
#include <map>
#include <mutex>

namespace ramh::bind {

DType dtype_from_numpy(const py::dtype& dt, const char* what) {
  char kind = dt.kind();
  auto size = dt.itemsize();
  if (kind == 'b' && size == 1) return DType::U8;  // bool masks are stored as 0/1 bytes
  if (kind == 'u' && size == 1) return DType::U8;
  if (kind == 'u' && size == 2) return DType::U16;
  if (kind == 'i' && size == 4) return DType::I32;
  if (kind == 'i' && size == 8) return DType::I64;
  if (kind == 'f' && size == 2) return DType::F16;
  if (kind == 'f' && size == 4) return DType::F32;
  fail(what, " has unsupported dtype ", std::string(py::str(dt)));
}

py::dtype numpy_dtype(DType t) { return py::dtype(dtype_name(t)); }

DType dtype_from_arg(const py::handle& obj, const char* what, DType default_dtype) {
  if (obj.is_none()) return default_dtype;
  py::dtype dt;
  try {
    dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
  } catch (py::error_already_set&) {
    fail(what, " is not a dtype: ", std::string(py::repr(obj)));
  }
  return dtype_from_numpy(dt, what);
}

std::size_t array_nbytes(const std::vector<int64_t>& shape, DType dtype) {
  // Element and byte counts must fit: a wrapped product would allocate a small block under a huge exported shape.
  const int64_t item = static_cast<int64_t>(dtype_size(dtype));
  int64_t n = 1;
  for (auto s : shape) {
    if (s < 0) fail("negative size in shape");
    if (s != 0 && n > std::numeric_limits<int64_t>::max() / item / s)
      fail("shape ", Tensor(nullptr, dtype, shape).shape_str(), " is too large for one array");
    n *= s;
  }
  return static_cast<std::size_t>(n * item);
}

std::shared_ptr<DeviceArray> DeviceArray::empty(const std::vector<int64_t>& shape, DType dtype, int device_id,
                                                void* stream) {
  auto a = std::make_shared<DeviceArray>();
  a->buffer = std::make_shared<DeviceBuffer>(array_nbytes(shape, dtype), device_id, stream);
  a->view = Tensor(a->buffer->data(), dtype, shape, Device::CUDA, device_id);
  a->stream = stream;
  return a;
}

bool is_device_array(const py::handle& obj) {
  return py::isinstance<DeviceArray>(obj) || py::hasattr(obj, "__cuda_array_interface__");
}

namespace {
DType dtype_from_typestr(const std::string& ts, const char* what) {
  py::dtype dt(ts);
  // Device memory in the other byte order cannot be fixed without a device copy the caller should make knowingly.
  if (!dt.attr("isnative").cast<bool>())
    fail(what, " has non-native byte order (typestr ", ts, "); convert it to native byte order first");
  return dtype_from_numpy(dt, what);
}

ArrayArg cuda_array_interface_arg(const py::handle& obj, const char* what) {
  py::dict cai = obj.attr("__cuda_array_interface__");
  ArrayArg out;
  out.keep = py::reinterpret_borrow<py::object>(obj);
  std::vector<int64_t> shape;
  for (auto s : cai["shape"].cast<py::tuple>()) shape.push_back(s.cast<int64_t>());
  DType dt = dtype_from_typestr(cai["typestr"].cast<std::string>(), what);
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    // Accept explicit strides only when they describe the compact row-major layout.
    auto strides = cai["strides"].cast<py::tuple>();
    int64_t expect = static_cast<int64_t>(dtype_size(dt));
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
      if (shape[i] > 1 && strides[i].cast<int64_t>() != expect)
        fail(what, " must be a C-contiguous CUDA array (make a contiguous copy first)");
      expect *= shape[i];
    }
  }
  auto data = cai["data"].cast<py::tuple>();
  auto ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  int dev = ptr ? device_of_pointer(ptr) : 0;
  if (ptr && dev < 0) fail(what, " claims __cuda_array_interface__ but its pointer is not device memory");
  // Work the producer has queued on its own stream must finish before the core reads the memory: the core stream
  // waits for it on the device (an event), so the host is not blocked here, with the GIL held.
  if (ptr == nullptr) {
    // nothing to read (a zero-size array)
  } else if (!cai.contains("stream")) {
    // No stream key (interface version 2, e.g. PyTorch): the producer may still be writing on the legacy default
    // stream, which the core's non-blocking streams do not wait for by themselves.
    stream_wait(core_stream(dev), nullptr, dev);
  } else if (!cai["stream"].is_none()) {  // None: the producer says no synchronisation is needed
    auto s = cai["stream"].cast<uintptr_t>();
    // Legacy (1) and per-thread (2) default streams are passed as their CUDA handles.
    void* handle = s == 1 ? nullptr : s == 2 ? reinterpret_cast<void*>(uintptr_t{2}) : reinterpret_cast<void*>(s);
    stream_wait(core_stream(dev), handle, dev);
  }
  out.tensor = Tensor(ptr, dt, shape, Device::CUDA, dev < 0 ? 0 : dev);
  return out;
}
}  // namespace

ArrayArg array_arg(const py::handle& obj, const char* what) {
  if (obj.is_none()) fail(what, " must be an array, got None");
  if (py::isinstance<DeviceArray>(obj)) {
    ArrayArg out;
    auto& da = obj.cast<DeviceArray&>();
    out.tensor = da.view;
    out.keep = py::reinterpret_borrow<py::object>(obj);
    return out;
  }
  if (py::hasattr(obj, "__cuda_array_interface__")) return cuda_array_interface_arg(obj, what);
  // Leaked on purpose: a static py::object would be released after the interpreter has shut down (abort at exit).
  static py::object* ascontiguousarray = new py::object(py::module_::import("numpy").attr("ascontiguousarray"));
  py::array arr;
  try {
    arr = (*ascontiguousarray)(obj);
  } catch (py::error_already_set& e) {
    fail(what, " could not be read as an array: ", e.what());
  }
  if (arr.dtype().kind() == 'O') fail(what, " must be a numeric array, got dtype object");
  // The kernels read native byte order. Every op converts here, in one place: a big-endian '>f4' read as it is
  // would give silently wrong numbers (logits 4.0 read as 8.9e-44).
  if (!arr.dtype().attr("isnative").cast<bool>()) {
    try {
      arr = arr.attr("astype")(arr.dtype().attr("newbyteorder")("="));
    } catch (py::error_already_set& e) {
      fail(what, " could not be converted to native byte order: ", e.what());
    }
  }
  ArrayArg out;
  std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
  // Inputs are only read: a read-only array (e.g. a LoadedImage's pixels) is fine, so no mutable_data() here.
  out.tensor = Tensor(const_cast<void*>(arr.data()), dtype_from_numpy(arr.dtype(), what), shape, Device::CPU, 0);
  out.keep = arr;
  return out;
}

py::array new_host_array(const std::vector<int64_t>& shape, DType dtype, Tensor* view) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  py::array a(numpy_dtype(dtype), s);
  if (view) *view = Tensor(a.mutable_data(), dtype, shape, Device::CPU, 0);
  return a;
}

void* core_stream(int device_id) { return default_stream(device_id).handle(); }

std::shared_ptr<DeviceArray> new_device_array(const std::vector<int64_t>& shape, DType dtype, const Tensor& like) {
  return DeviceArray::empty(shape, dtype, like.device_id, core_stream(like.device_id));
}

void* op_stream(const ArrayArg& arg) { return arg.on_device() ? core_stream(arg.tensor.device_id) : nullptr; }

py::object new_output(const std::vector<int64_t>& shape, DType dtype, const ArrayArg& like, Tensor* view) {
  if (like.on_device()) {
    auto da = new_device_array(shape, dtype, like.tensor);
    *view = da->view;
    return py::cast(da);
  }
  return new_host_array(shape, dtype, view);
}

}  // namespace ramh::bind
