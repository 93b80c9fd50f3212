// sphcnn_kernels._cpu: the CPU XLA FFI handlers as capsules for
// jax.ffi.register_ffi_target, the size of their scratch result, and the
// constant generators used by the Python plans (Wigner-d by Risbo's recurrence,
// spin-weighted Legendre columns, the packed lambda table of the FFI kernels).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "packed_table_builder.h"
#include "sphcnn/contract.h"
#include "sphcnn/packed_table.h"
#include "sphcnn/recurrences.h"
#include "sphcnn/targets.h"
#include "transforms_cpu.h"

namespace py = pybind11;

namespace {

py::array_t<double> wigner_d_array(int ell_max, int ell_min, double p, double q) {
  if (ell_max < 0 || ell_min < 0 || ell_min > ell_max) {
    throw std::invalid_argument("wigner_d: need 0 <= ell_min <= ell_max, got ell_min=" +
                                std::to_string(ell_min) + ", ell_max=" + std::to_string(ell_max));
  }
  const py::ssize_t width = 2 * static_cast<py::ssize_t>(ell_max) + 1;
  py::array_t<double> out({static_cast<py::ssize_t>(ell_max - ell_min + 1), width, width});
  double* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    sphcnn::wigner_d_risbo(ell_max, ell_min, p, q, data);
  }
  return out;
}

template <typename T>
py::array packed_table_array(int n, int ell_max, const std::vector<int>& spins) {
  const sphcnn::PackedTable layout = sphcnn::packed_table(n, ell_max, sizeof(T));
  py::array_t<T> out(static_cast<py::ssize_t>(layout.size(static_cast<int>(spins.size()))));
  T* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    sphcnn::build_packed_table<T>(n, ell_max, spins, data, threads);
  }
  return out;
}

void check_table_args(int n, int ell_max) {
  if (n < 4 || n % 2 || ell_max < 0 || ell_max > n / 2 - 1) {
    throw std::invalid_argument("packed table: need n even >= 4 and 0 <= ell_max <= n/2 - 1, got n=" +
                                std::to_string(n) + ", ell_max=" + std::to_string(ell_max));
  }
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "sphcnn CPU kernels (XLA FFI) and float64 constant generators";

  m.def("registrations", []() {
    py::dict d;
    for (const auto& [name, handler] : sphcnn::registered_targets()) d[name] = py::capsule(handler);
    return d;
  }, "FFI target name -> handler capsule, for jax.ffi.register_ffi_target(platform='cpu').");

  m.def("scratch_bytes", [](bool analysis, int n, int ell_max, int spins, int64_t batch, int64_t channels,
                            bool is_double, int lambda_source) {
    (void)analysis;
    (void)lambda_source;
    return sphcnn::cpu::scratch_bytes(sphcnn::geometry_of(n, ell_max, spins, batch, channels, is_double));
  }, py::arg("analysis"), py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"),
  py::arg("channels"), py::arg("is_double"), py::arg("lambda_source"),
  "Bytes of the scratch result of one call of the CPU targets (none).");

  m.def("grid_scratch_bytes", [](bool analysis, int nlat, int nlon, int ell_max, int spins, int64_t batch,
                                 int64_t channels, bool is_double) {
    (void)analysis;
    return sphcnn::cpu::scratch_bytes(
        sphcnn::grid_geometry_of(nlat, nlon, ell_max, spins, batch, channels, is_double));
  }, py::arg("analysis"), py::arg("nlat"), py::arg("nlon"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"),
  py::arg("channels"), py::arg("is_double"),
  "Bytes of the scratch result of one call of sphcnn_grid_analysis or sphcnn_grid_synthesis on a grid of nlat "
  "rings of nlon points (none on the CPU; the CUDA module's grid_scratch_bytes has the same arguments).");

  m.def("activated_gradient_scratch_bytes", [](int, int, int, int64_t, int64_t, bool, int, bool) {
    return static_cast<size_t>(0);
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("batch"), py::arg("channels"),
  py::arg("is_double"), py::arg("lambda_source"), py::arg("pool"),
  "Bytes of the scratch result of sphcnn_activated_gradient: none on CPUs (cached host buffers).");

  m.def("packed_table_size", [](int n, int ell_max, int spins, bool is_double) {
    check_table_args(n, ell_max);
    return sphcnn::packed_table(n, ell_max, is_double ? 8 : 4).size(spins);
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("is_double"),
  "Entries of the packed lambda table (sphcnn/packed_table.h).");

  m.def("packed_legendre_table", [](int n, int ell_max, std::vector<int> spins, bool is_double) {
    check_table_args(n, ell_max);
    return is_double ? packed_table_array<double>(n, ell_max, spins) : packed_table_array<float>(n, ell_max, spins);
  }, py::arg("n"), py::arg("ell_max"), py::arg("spins"), py::arg("is_double"),
  "The packed lambda table of the FFI kernels (float32, or float64 if is_double), 1-D; "
  "layout in csrc/include/sphcnn/packed_table.h.");

  m.def("wigner_d", [](int ell_max, double beta, int ell_min) {
    return wigner_d_array(ell_max, ell_min, std::cos(0.5 * beta), std::sin(0.5 * beta));
  }, py::arg("ell_max"), py::arg("beta"), py::arg("ell_min") = 0,
  "d^l_{m,m'}(beta) for ell_min <= l <= ell_max: float64 array (ell_max - ell_min + 1, "
  "2 ell_max + 1, 2 ell_max + 1) with d at [l - ell_min, ell_max + m, ell_max + m'].");

  m.def("wigner_d_half_pi", [](int ell_max, int ell_min) {
    const double h = std::sqrt(0.5);
    return wigner_d_array(ell_max, ell_min, h, h);
  }, py::arg("ell_max"), py::arg("ell_min") = 0,
  "d^l_{m,m'}(pi/2), same layout as wigner_d.");

  m.def("spin_legendre", [](int ell_max, std::vector<int> spins, py::array_t<double, py::array::c_style | py::array::forcecast> thetas) {
    if (ell_max < 0) throw std::invalid_argument("spin_legendre: ell_max must be >= 0");
    const py::ssize_t count = thetas.size();
    const py::ssize_t S = static_cast<py::ssize_t>(spins.size());
    const py::ssize_t M = 2 * static_cast<py::ssize_t>(ell_max) + 1;
    const py::ssize_t L = ell_max + 1;
    py::array_t<double> out({S, count, M, L});
    double* data = out.mutable_data();
    const double* th = thetas.data();
    {
      py::gil_scoped_release release;
      for (py::ssize_t s = 0; s < S; ++s) {
        for (py::ssize_t t = 0; t < count; ++t) {
          sphcnn::spin_legendre_columns(ell_max, spins[s], th[t], data + (s * count + t) * M * L);
        }
      }
    }
    return out;
  }, py::arg("ell_max"), py::arg("spins"), py::arg("thetas"),
  "lambda_{l,m,s}(theta) = (-1)^s sqrt((2l+1)/(4 pi)) d^l_{m,-s}(theta): float64 array "
  "(S, len(thetas), 2 ell_max + 1, ell_max + 1) with lambda at [s, t, ell_max + m, l].");
}
