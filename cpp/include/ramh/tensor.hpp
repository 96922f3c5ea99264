// ramh/tensor.hpp — the one array type every kernel family takes: a non-owning, dense, row-major view of memory on
// the host or on a CUDA device. Ownership stays with the caller (NumPy, the core's DeviceBuffer, CuPy, torch...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ramh {

enum class DType : int { U8 = 0, U16 = 1, I32 = 2, F16 = 3, F32 = 4, I64 = 5 };
enum class Device : int { CPU = 0, CUDA = 1 };

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::U8: return 1;
    case DType::U16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
    case DType::F32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::U8: return "uint8";
    case DType::U16: return "uint16";
    case DType::F16: return "float16";
    case DType::I32: return "int32";
    case DType::F32: return "float32";
    case DType::I64: return "int64";
  }
  return "?";
}

// Raised for a bad argument (shape, dtype, value): the bindings map it to Python's ValueError.
class ArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Raised for a CUDA runtime failure or a CUDA call in a build without CUDA: mapped to RuntimeError.
class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds an error message from pieces: fail<ArgumentError>("boxes must be N x 5, got ", n, " x ", k).
template <class E = ArgumentError, class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw E(os.str());
}

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Device device = Device::CPU;
  int device_id = 0;

  Tensor() = default;
  Tensor(void* d, DType t, std::vector<int64_t> s, Device dev = Device::CPU, int dev_id = 0)
      : data(d), dtype(t), shape(std::move(s)), device(dev), device_id(dev_id) {}

  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape.at(static_cast<std::size_t>(i < 0 ? i + ndim() : i)); }
  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
  bool on_cuda() const { return device == Device::CUDA; }

  std::string shape_str() const {
    std::ostringstream os;
    os << "(";
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << (shape.size() == 1 ? ",)" : ")");
    return os.str();
  }
};

// Argument checks shared by every family; `what` names the argument in the message.
inline void require_ndim(const Tensor& t, const char* what, std::initializer_list<int> allowed) {
  for (int n : allowed)
    if (t.ndim() == n) return;
  std::ostringstream os;
  os << what << " must have ";
  bool first = true;
  for (int n : allowed) {
    os << (first ? "" : " or ") << n;
    first = false;
  }
  os << " dimensions, got shape " << t.shape_str();
  throw ArgumentError(os.str());
}

inline void require_dtype(const Tensor& t, const char* what, std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype == d) return;
  std::ostringstream os;
  os << what << " must be of dtype ";
  bool first = true;
  for (DType d : allowed) {
    os << (first ? "" : "/") << dtype_name(d);
    first = false;
  }
  os << ", got " << dtype_name(t.dtype);
  throw ArgumentError(os.str());
}

inline void require_nonempty(const Tensor& t, const char* what) {
  for (auto s : t.shape)
    if (s <= 0) fail(what, " must have positive sizes, got shape ", t.shape_str());
}

// `shape` resolved for a view of `t`'s dense row-major memory with another shape (no copy): one size may be -1, the
// size that keeps the element count. ArgumentError, naming both shapes, for a size below -1, a second -1, a -1 that
// cannot be inferred, or an element count other than `t`'s.
inline std::vector<int64_t> reshape_dims(const Tensor& t, std::vector<int64_t> shape) {
  const Tensor want(nullptr, t.dtype, shape);
  int infer = -1;
  bool empty = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("reshape: at most one size may be -1, got shape ", want.shape_str());
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      fail("reshape: sizes must be >= 0 (or one -1), got shape ", want.shape_str());
    }
    empty = empty || shape[i] == 0;
  }
  // The product of the given sizes; `overflow`: more elements than any array holds, so it cannot match.
  int64_t known = empty ? 0 : 1;
  bool overflow = false;
  for (auto s : shape) {
    if (empty || s == -1) continue;
    if (known > std::numeric_limits<int64_t>::max() / s) overflow = true;
    else known *= s;
  }
  const int64_t n = t.numel();
  // With a -1 the other sizes must divide the count (and not be zero: any size would fit then, as NumPy says too).
  const bool fits = !overflow && (infer < 0 ? known == n : known != 0 && n % known == 0);
  if (!fits)
    fail("reshape: cannot view an array of shape ", t.shape_str(), " (", n, " elements) as shape ", want.shape_str());
  if (infer >= 0) shape[static_cast<std::size_t>(infer)] = n / known;
  return shape;
}

// `t` viewed with another shape (same memory, dtype and device); errors as reshape_dims.
inline Tensor reshaped(const Tensor& t, std::vector<int64_t> shape) {
  Tensor out = t;
  out.shape = reshape_dims(t, std::move(shape));
  return out;
}

inline void require_same_device(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.device != b.device || (a.device == Device::CUDA && a.device_id != b.device_id))
    fail(an, " and ", bn, " must be on the same device");
}

}  // namespace ramh
