// sphcnn_kernels._cuda: the CUDA XLA FFI handlers (Legendre stage) as capsules for
// jax.ffi.register_ffi_target(platform="CUDA"), and control of the cached lambda
// tables. Importing the module calls no CUDA function (no device is needed).
#include <pybind11/pybind11.h>

#include <cstddef>

#include "transforms_cuda.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sphcnn CUDA kernels (XLA FFI): the Legendre stage of the transforms";

  m.def("registrations", []() {
    py::dict d;
    d["sphcnn_legendre_analysis_cuda"] =
        py::capsule(reinterpret_cast<void*>(SphcnnLegendreAnalysisCuda));
    d["sphcnn_legendre_synthesis_cuda"] =
        py::capsule(reinterpret_cast<void*>(SphcnnLegendreSynthesisCuda));
    return d;
  }, "FFI target name -> handler capsule, for jax.ffi.register_ffi_target(platform='CUDA').");

  m.def("clear_table_cache", []() {
    size_t freed;
    {
      py::gil_scoped_release release;
      freed = sphcnn::cuda::clear_table_cache();
    }
    return freed;
  }, "Free the cached device lambda tables (table mode) after synchronizing the devices "
     "that hold them; returns how many were freed. They are rebuilt on next use.");
}
