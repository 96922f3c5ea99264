// DeviceArray and the device/pool queries of ramh_rt._core.
#include <sstream>

#include "bind_common.hpp"
#include "dlpack.h"

namespace ramh::bind {
namespace {

const char* typestr(DType t) {
  switch (t) {
    case DType::U8: return "|u1";
    case DType::U16: return "<u2";
    case DType::I32: return "<i4";
    case DType::F16: return "<f2";
    case DType::F32: return "<f4";
    case DType::I64: return "<i8";
  }
  return "";
}

DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::U8: return {kDLUInt, 8, 1};
    case DType::U16: return {kDLUInt, 16, 1};
    case DType::I32: return {kDLInt, 32, 1};
    case DType::F16: return {kDLFloat, 16, 1};
    case DType::F32: return {kDLFloat, 32, 1};
    case DType::I64: return {kDLInt, 64, 1};
  }
  return {kDLUInt, 8, 1};
}

// Keeps the DeviceArray (and so its pool block) alive for as long as the DLPack consumer holds the tensor.
struct DLPackContext {
  std::shared_ptr<DeviceArray> array;
  std::vector<int64_t> shape;
  DLManagedTensor managed{};
  bool ordered = false;      // the consumer named its stream (DLPack's `stream` argument)
  void* consumer = nullptr;  // that stream (nullptr: the legacy default stream)
};

void dl_deleter(DLManagedTensor* self) {
  auto* ctx = static_cast<DLPackContext*>(self->manager_ctx);
  // The consumer lets go when its last *host* reference does, while its kernels may still read the memory: the
  // block goes back to the pool on the core stream, so make that stream wait for the consumer's queued work first,
  // or the next op could be handed the same block and overwrite it. (No Python objects are touched here: a
  // consumer such as PyTorch may call this from a thread that does not hold the GIL.)
  if (ctx->ordered) {
    try {
      stream_wait(ctx->array->stream, ctx->consumer, ctx->array->view.device_id);
    } catch (...) {  // a CUDA context torn down at exit: nothing left to order
    }
  }
  delete ctx;
}

// DLPack's stream argument for CUDA: None or 1 the legacy default stream, 2 the per-thread default stream, -1 "do
// not synchronise", any other value a cudaStream_t; 0 is disallowed as ambiguous.
bool consumer_stream(const py::object& stream, void** out) {
  if (stream.is_none()) {
    *out = nullptr;
    return true;
  }
  const auto s = stream.cast<int64_t>();
  if (s == -1) return false;
  if (s == 0) fail("DeviceArray.__dlpack__: stream=0 is ambiguous; pass 1 (legacy default stream), 2 (per-thread) "
                   "or a stream handle");
  if (s < -1) fail("DeviceArray.__dlpack__: stream must be -1, 1, 2 or a CUDA stream handle, got ", s);
  *out = s == 1 ? nullptr : reinterpret_cast<void*>(static_cast<uintptr_t>(s));  // 2 is cudaStreamPerThread
  return true;
}

py::capsule to_dlpack(const std::shared_ptr<DeviceArray>& a, const py::object& stream) {
  void* consumer = nullptr;
  const bool ordered = consumer_stream(stream, &consumer);
  // Work still queued on the core stream for this array (e.g. an engine enqueued on stream_handle()) comes before
  // anything the consumer then queues on its own stream.
  if (ordered) stream_wait(consumer, a->stream, a->view.device_id);
  auto* ctx = new DLPackContext();
  ctx->ordered = ordered;
  ctx->consumer = consumer;
  ctx->array = a;
  ctx->shape = a->view.shape;
  DLTensor& t = ctx->managed.dl_tensor;
  t.data = a->view.data;
  t.device = {kDLCUDA, a->view.device_id};
  t.ndim = a->view.ndim();
  t.dtype = dl_dtype(a->view.dtype);
  t.shape = ctx->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = dl_deleter;
  // An unconsumed capsule ("dltensor") frees itself; a consumed one ("used_dltensor") is the consumer's to free.
  return py::capsule(&ctx->managed, "dltensor", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      if (m && m->deleter) m->deleter(m);
    }  // else consumed ("used_dltensor"): the consumer frees it. (PyCapsule_IsValid sets no error to clear, and
       // clearing here could swallow an unrelated exception in flight while the capsule is collected.)
  });
}

std::vector<int64_t> shape_from(const py::sequence& seq) {
  std::vector<int64_t> s;
  for (auto v : seq) {
    auto x = v.cast<int64_t>();
    if (x < 0) fail("shape must not have negative sizes, got ", x);
    s.push_back(x);
  }
  return s;
}

}  // namespace

void register_device(py::module_& m) {
  py::class_<DeviceArray, std::shared_ptr<DeviceArray>>(m, "DeviceArray", R"doc(
A dense CUDA array owned by the ramh_rt core (pooled device memory).

Produced by the ops when given device input; readable by CuPy (``cupy.asarray``), PyTorch (``torch.from_dlpack``),
ONNX Runtime IO binding and TensorRT by pointer through ``__cuda_array_interface__`` (v3) and ``__dlpack__``.
The memory returns to the core's pool when the last reference (including DLPack consumers) is gone. DLPack
consumers that pass their stream (``torch.from_dlpack`` and CuPy do) are ordered both ways: their work starts after
the core's and the block is reused only after theirs. Through ``__cuda_array_interface__`` the consumer is told the
core's stream to wait on, but that interface has no release protocol: finish (synchronise) the work reading the array
before dropping the last reference to it.
)doc")
      .def_static(
          "empty",
          [](py::sequence shape, py::object dtype, int device) {
            auto s = shape_from(shape);
            const DType dt = dtype_from_arg(dtype, "dtype", DType::F32);
            array_nbytes(s, dt);  // a bad shape is the caller's error, before any device is touched
            return DeviceArray::empty(s, dt, device, core_stream(device));
          },
          py::arg("shape"), py::arg("dtype") = py::none(), py::arg("device") = 0,
          "Uninitialised device array of the given shape and dtype (uint8, uint16, int32, int64, float16, float32).")
      .def_static(
          "from_host",
          [](py::object array, int device) {
            auto arg = array_arg(array, "array");
            if (arg.on_device()) fail("array is already on a CUDA device");
            auto out = DeviceArray::empty(arg.tensor.shape, arg.tensor.dtype, device, core_stream(device));
            {
              py::gil_scoped_release release;
              copy_async(out->view.data, arg.tensor.data, arg.tensor.nbytes(), out->stream);
              stream_synchronize(out->stream);
            }
            return out;
          },
          py::arg("array"), py::arg("device") = 0, "Copy a NumPy array to the device.")
      .def(
          "to_host",
          [](const DeviceArray& a) {
            Tensor host;
            py::array out = new_host_array(a.view.shape, a.view.dtype, &host);
            {
              py::gil_scoped_release release;
              copy_async(host.data, a.view.data, a.view.nbytes(), a.stream);
              stream_synchronize(a.stream);
            }
            return out;
          },
          "Copy to a new NumPy array (waits for the work that produced this array).")
      .def(
          "reshape",
          [](const std::shared_ptr<DeviceArray>& a, const py::object& shape) {
            std::vector<int64_t> s;
            try {
              if (py::isinstance<py::sequence>(shape) && !py::isinstance<py::str>(shape)) {
                for (auto v : shape.cast<py::sequence>()) s.push_back(v.cast<int64_t>());
              } else {
                s.push_back(shape.cast<int64_t>());
              }
            } catch (const py::cast_error&) {
              fail("DeviceArray.reshape: shape must be an int or a sequence of ints, got ",
                   py::str(shape).cast<std::string>());
            }
            // A view: it shares the pool block (kept alive by either array) and the producer's stream.
            auto out = std::make_shared<DeviceArray>(*a);
            out->view = reshaped(a->view, std::move(s));
            return out;
          },
          py::arg("shape"), R"doc(
A view of the same device memory with another shape (no copy; both arrays keep the block alive). ``shape`` is an int
or a sequence of ints; one size may be -1 (inferred). Raises ValueError, naming both shapes, when the element count
differs (or a size is below -1, or more than one is -1).
)doc")
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.view.shape)); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return numpy_dtype(a.view.dtype); })
      .def_property_readonly("device", [](const DeviceArray& a) { return a.view.device_id; })
      .def_property_readonly("ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.view.data); })
      .def_property_readonly("nbytes", [](const DeviceArray& a) { return a.view.nbytes(); })
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.view.ndim(); })
      .def_property_readonly("__cuda_array_interface__",
                             [](const DeviceArray& a) {
                               py::dict d;
                               d["shape"] = py::tuple(py::cast(a.view.shape));
                               d["typestr"] = typestr(a.view.dtype);
                               d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(a.view.data), false);
                               d["strides"] = py::none();
                               d["version"] = 3;
                               // The core stream: a consumer orders its work after whatever is still queued there
                               // (the ops synchronise before returning, but engines may enqueue on stream_handle()).
                               // The interface has no release protocol: a consumer must be done with the memory
                               // (its stream synchronised) before it drops its last reference.
                               d["stream"] = a.stream ? reinterpret_cast<uintptr_t>(a.stream) : uintptr_t{1};
                               return d;
                             })
      .def(
          "__dlpack__",
          [](std::shared_ptr<DeviceArray> a, py::object stream, py::object /*max_version*/,
             py::object /*dl_device*/, py::object copy) {
            if (!copy.is_none() && copy.cast<bool>()) fail("DeviceArray.__dlpack__ does not copy (copy=True)");
            return to_dlpack(a, stream);
          },
          py::arg("stream") = py::none(), py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
          py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& a) { return py::make_tuple(int(kDLCUDA), a.view.device_id); })
      .def("__repr__", [](const DeviceArray& a) {
        std::ostringstream os;
        os << "DeviceArray(shape=" << a.view.shape_str() << ", dtype=" << dtype_name(a.view.dtype)
           << ", device=cuda:" << a.view.device_id << ")";
        return os.str();
      });

  m.def(
      "to_host",
      [](py::object array) {
        auto arg = array_arg(array, "array");
        if (!arg.on_device()) fail("array is not on a CUDA device");
        Tensor host;
        py::array out = new_host_array(arg.tensor.shape, arg.tensor.dtype, &host);
        if (arg.tensor.nbytes() > 0) {
          py::gil_scoped_release release;
          void* s = core_stream(arg.tensor.device_id);  // ordered after the producer's work by array_arg
          copy_async(host.data, arg.tensor.data, arg.tensor.nbytes(), s);
          stream_synchronize(s);
        }
        return out;
      },
      py::arg("array"),
      "Copy any C-contiguous CUDA array (DeviceArray, CuPy, PyTorch, __cuda_array_interface__) to a new NumPy array.");
  m.def("cuda_compiled", &cuda_compiled, "True when this build of ramh_rt contains CUDA kernels.");
  m.def("cuda_available", &cuda_available,
        "True when CUDA kernels are compiled in and a CUDA device can be used on this machine.");
  m.def("cuda_device_count", &cuda_device_count, "Number of visible CUDA devices (0 without CUDA).");
  m.def(
      "device_properties",
      [](int device) {
        auto p = device_properties(device);
        py::dict d;
        d["id"] = p.id;
        d["name"] = p.name;
        d["compute_capability"] = py::make_tuple(p.cc_major, p.cc_minor);
        d["total_memory"] = p.total_memory;
        d["multiprocessors"] = p.multiprocessors;
        d["integrated"] = p.integrated;
        return d;
      },
      py::arg("device") = 0, "Name, compute capability, memory and SM count of a CUDA device.");
  m.def(
      "pool_stats",
      [](int device) {
        auto s = pool_stats(device);
        py::dict d;
        d["reserved_bytes"] = s.reserved_bytes;
        d["used_bytes"] = s.used_bytes;
        d["pinned_cached_bytes"] = s.pinned_cached_bytes;
        return d;
      },
      py::arg("device") = 0, "Bytes held by the core's device pool and pinned host cache.");
  m.def("trim_pool", &trim_pool, py::arg("device") = 0, "Give cached device and pinned memory back to the driver.");
  m.def(
      "stream_handle", [](int device) { return reinterpret_cast<uintptr_t>(core_stream(device)); },
      py::arg("device") = 0,
      "The core's CUDA stream (cudaStream_t) of a device as an integer, for engines that enqueue work by handle "
      "(TensorRT execute_async_v3, ONNX Runtime user_compute_stream). Raises RuntimeError without CUDA.");
  m.def(
      "device_of_pointer", [](uintptr_t ptr) { return device_of_pointer(reinterpret_cast<const void*>(ptr)); },
      py::arg("ptr"), "The CUDA device holding the memory at `ptr`, or -1 for host memory (or a build without CUDA).");
  m.def(
      "synchronize",
      [](int device) {
        py::gil_scoped_release release;
        stream_synchronize(core_stream(device));
      },
      py::arg("device") = 0, "Wait for all work queued on the core's stream of a device.");
}

}  // namespace ramh::bind
