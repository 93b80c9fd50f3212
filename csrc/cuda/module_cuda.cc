// sphcnn_kernels._cuda: the CUDA XLA FFI handlers as capsules for
// jax.ffi.register_ffi_target(platform="CUDA"), and the size of their scratch
// result, the CUDA runtime it was built with and the digest of its sources.
// Importing the module calls no CUDA function (no device is needed).
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "launch_plan.h"
#include "sphcnn/contract.h"
#include "activation_gradient.h"
#include "sphcnn/targets.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "sphcnn CUDA kernels (XLA FFI): the transforms as two kernels each, ring DFT and Legendre stage";

  m.def("registrations", []() {
    py::dict d;
    for (const auto& [name, handler] : sphcnn::registered_targets()) d[name] = py::capsule(handler);
    return d;
  }, "FFI target name -> handler capsule, for jax.ffi.register_ffi_target(platform='CUDA').");

  m.def("cuda_runtime_version", []() { return CUDART_VERSION; },
        "The CUDA runtime version the module was built with, 1000 major + 10 minor (13000 for CUDA 13.0).");

  m.def("cuda_driver_version", []() {
    int version = 0;
    return cudaDriverGetVersion(&version) == cudaSuccess ? version : 0;
  }, "The newest CUDA version the installed driver supports, 1000 major + 10 minor; 0 without a driver.");

  m.def("kernel_sources_digest", []() { return std::string(SPHCNN_KERNEL_DIGEST); },
        "SHA-256 of the CUDA sources (csrc/cuda, csrc/include/sphcnn) the module was compiled from: "
        "backend='auto' runs these kernels only where auto_backend.json holds medians with this digest.");

  m.def("scratch_bytes", [](bool analysis, int n, int ell_max, int spins, int64_t batch, int64_t channels,
                            bool is_double, int lambda_source) {
    const sphcnn::Geometry g = sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double);
    return sphcnn::cuda::launch_plan(g, analysis, static_cast<sphcnn::LambdaSource>(lambda_source)).scratch_bytes;
  }, py::arg("analysis"), py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"),
  py::arg("channels"), py::arg("is_double"), py::arg("lambda_source"),
  "Bytes of the scratch result of one call of the CUDA targets (Fourier rings, and buffers of the "
  "kernels that do not fit shared memory).");

  m.def("grid_scratch_bytes", [](bool analysis, int nlat, int nlon, int ell_max, int spins, int64_t batch,
                                 int64_t channels, bool is_double) {
    const sphcnn::Geometry g = sphcnn::grid_geometry_of(nlat, nlon, ell_max, spins, batch, channels, is_double);
    return sphcnn::cuda::grid_launch_plan(g, analysis, false).scratch_bytes;  // the same for mirrored rings
  }, py::arg("analysis"), py::arg("nlat"), py::arg("nlon"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"),
  py::arg("channels"), py::arg("is_double"),
  "Bytes of the scratch result of one call of sphcnn_grid_analysis (analysis true) or sphcnn_grid_synthesis on "
  "a grid of nlat rings of nlon points (Fourier rings, and buffers of the kernels that do not fit shared "
  "memory); lambda is on the fly.");

  m.def("mixing_analysis_scratch_bytes", [](int n, int ell_max, int spins, int64_t batch, int64_t channels,
                                            int out_spins, int64_t out_channels, bool is_double, int lambda_source) {
    const sphcnn::Geometry g = sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double);
    const auto ml = sphcnn::cuda::mixing_launch(g, static_cast<sphcnn::LambdaSource>(lambda_source), out_spins,
                                                out_channels);
    return ml.supported ? py::object(py::int_(ml.scratch_bytes)) : py::object(py::none());
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"), py::arg("channels"),
  py::arg("out_spins"), py::arg("out_channels"), py::arg("is_double"), py::arg("lambda_source"),
  "Bytes of the scratch result of sphcnn_mixing_analysis (the analysis's and the energy shares), or None "
  "where the target does not apply (lambda on the fly, more spins than one launch takes).");

  m.def("mixing_gradient_scratch_bytes", [](int n, int ell_max, int spins, int64_t batch, int64_t channels,
                                            bool is_double, int lambda_source, bool pool) {
    const sphcnn::Geometry g = sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double);
    const auto ml = sphcnn::cuda::mixing_gradient_launch(g, static_cast<sphcnn::LambdaSource>(lambda_source),
                                                         pool ? 2 * n : n);
    return ml.supported ? py::object(py::int_(ml.scratch_bytes)) : py::object(py::none());
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"), py::arg("channels"),
  py::arg("is_double"), py::arg("lambda_source"), py::arg("pool"),
  "Bytes of the scratch result of sphcnn_mixing_gradient (the activated gradient's and the cotangent of the "
  "analysis's coefficients), or None where the target does not apply; n is the transform's grid.");

  m.def("affine_gradient_scratch_bytes", [](int n, int ell_max, int spins, int64_t batch, int64_t channels,
                                            bool is_double, int lambda_source) {
    const sphcnn::Geometry g = sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double);
    const auto al = sphcnn::cuda::affine_gradient_launch(g, static_cast<sphcnn::LambdaSource>(lambda_source));
    return al.supported ? py::object(py::int_(al.scratch_bytes)) : py::object(py::none());
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"), py::arg("channels"),
  py::arg("is_double"), py::arg("lambda_source"),
  "Bytes of the scratch result of sphcnn_affine_gradient (the analysis's and the products' shares), or None "
  "where the target does not apply (lambda on the fly).");

  m.def("activated_gradient_scratch_bytes", [](int n, int ell_max, int spins, int64_t batch, int64_t channels,
                                               bool is_double, int lambda_source, bool pool) {
    const sphcnn::Geometry g = sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double);
    return sphcnn::cuda::activated_gradient_scratch(g, static_cast<sphcnn::LambdaSource>(lambda_source),
                                                    pool ? 2 * n : n).bytes;
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"), py::arg("channels"),
  py::arg("is_double"), py::arg("lambda_source"), py::arg("pool"),
  "Bytes of the scratch result of sphcnn_activated_gradient (its synthesis's, the cotangent of the "
  "analysis input, the bias partials and their chunk sums); n is the transform's grid.");
}
