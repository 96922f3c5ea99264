// ramh_rt._core: the pybind11 module. Maps C++ exceptions to Python ones and registers each family's bindings.
#include "bind_common.hpp"

#ifndef RAMH_VERSION
#define RAMH_VERSION "0.0.0"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "ramh_rt C++/CUDA core: preprocessing, mask postprocessing, ROI crop/paste and erosion quantification.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ramh::ArgumentError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const ramh::DeviceError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("build_info", [] {
    py::dict d;
    d["version"] = RAMH_VERSION;
    d["cuda"] = ramh::cuda_compiled();
    d["cuda_architectures"] = std::string(RAMH_CUDA_ARCHS);
    d["cuda_compiler"] = std::string(RAMH_CUDA_COMPILER_VERSION);
    d["cxx_compiler"] = std::string(RAMH_CXX_COMPILER);
#ifdef RAMH_WITH_OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    return d;
  }, "What this build of the core contains: version, CUDA (and for which architectures), compilers, OpenMP.");

  ramh::bind::register_device(m);
  ramh::bind::register_preprocess(m);
  ramh::bind::register_postprocess(m);
  ramh::bind::register_roi(m);
  ramh::bind::register_quantify(m);
}
