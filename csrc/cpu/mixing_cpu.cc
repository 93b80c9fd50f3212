// XLA FFI handlers of the per-degree mixing on the CPU (sphcnn/mixing.h):
// the product of a spherical convolution and its weight gradient, over the
// orders |m| <= l only. Threaded over (degree, batch row) blocks for the
// product, over degrees (largest first) for the weight gradient, on XLA's
// intra-op pool.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "handler_cpu.h"
#include "parallel_for.h"
#include "sphcnn/mixing.h"
#include "sphcnn/targets.h"
#include "transforms_cpu.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace {

// The complex (L, K_in, K_out) weights split into real and imaginary planes.
template <typename T>
void split_planes(const T* w, int64_t count, std::vector<T>& re, std::vector<T>& im) {
  re.resize(count);
  im.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    re[i] = w[2 * i];
    im[i] = w[2 * i + 1];
  }
}

constexpr int kRowBlock = 4;

template <typename T>
void mix(ffi::ThreadPool& pool, const MixingShape& s, const T* x, const T* w, T* y) {
  std::vector<T> w_re, w_im;
  split_planes(w, s.L * s.k_in * s.k_out, w_re, w_im);
  const int64_t x_row = 2 * s.k_in, y_row = 2 * s.k_out;
  parallel_for(pool, s.L * s.R, worker_count(pool), [&](int64_t item, int) {
    const int64_t l = item / s.R, r = item % s.R;
    const int64_t block = (l * s.R + r) * s.M;  // the first row of (l, r)
    const int64_t first = s.first_row(l), rows = s.rows(l);
    T* y_block = y + block * y_row;
    std::memset(y_block, 0, sizeof(T) * first * y_row);
    std::memset(y_block + (first + rows) * y_row, 0, sizeof(T) * (s.M - first - rows) * y_row);
    const T* wr = w_re.data() + l * s.k_in * s.k_out;
    const T* wi = w_im.data() + l * s.k_in * s.k_out;
    int64_t m = first;
    for (; m + kRowBlock <= first + rows; m += kRowBlock) {
      const T* xs[kRowBlock];
      T* ys[kRowBlock];
      for (int q = 0; q < kRowBlock; ++q) {
        xs[q] = x + (block + m + q) * x_row;
        ys[q] = y_block + (m + q) * y_row;
      }
      mix_rows<T, kRowBlock>(xs, wr, wi, s.k_in, s.k_out, ys);
    }
    for (; m < first + rows; ++m) {
      const T* xs[1] = {x + (block + m) * x_row};
      T* ys[1] = {y_block + m * y_row};
      mix_rows<T, 1>(xs, wr, wi, s.k_in, s.k_out, ys);
    }
  });
}

template <typename T>
void weight_gradient(ffi::ThreadPool& pool, const MixingShape& s, const T* x, const T* ct, T* g) {
  const int workers = worker_count(pool);
  const int64_t x_row = 2 * s.k_in, ct_row = 2 * s.k_out, plane = s.k_in * s.k_out;
  std::vector<std::vector<T>> planes(workers), ct_planes(workers);
  parallel_for(pool, s.L, workers, [&](int64_t item, int worker) {
    const int64_t l = s.L - 1 - item;  // the largest degrees (most rows) first
    std::vector<T>& acc = planes[worker];
    std::vector<T>& cts = ct_planes[worker];
    acc.assign(2 * plane, T(0));
    cts.resize(2 * kRowBlock * s.k_out);
    T* g_re = acc.data();
    T* g_im = acc.data() + plane;
    T* ct_re = cts.data();
    T* ct_im = cts.data() + kRowBlock * s.k_out;
    const int64_t first = s.first_row(l), rows = s.rows(l);
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t block = (l * s.R + r) * s.M;
      for (int64_t m = first; m < first + rows; m += kRowBlock) {
        const int count = static_cast<int>(std::min<int64_t>(kRowBlock, first + rows - m));
        const T* xs[kRowBlock];
        for (int q = 0; q < count; ++q) {
          xs[q] = x + (block + m + q) * x_row;
          const T* c = ct + (block + m + q) * ct_row;
          for (int64_t o = 0; o < s.k_out; ++o) {
            ct_re[q * s.k_out + o] = c[2 * o];
            ct_im[q * s.k_out + o] = c[2 * o + 1];
          }
        }
        if (count == kRowBlock) {
          accumulate_outer<T, kRowBlock>(xs, ct_re, ct_im, s.k_in, s.k_out, g_re, g_im);
        } else {
          for (int q = 0; q < count; ++q) {
            accumulate_outer<T, 1>(xs + q, ct_re + q * s.k_out, ct_im + q * s.k_out, s.k_in, s.k_out, g_re, g_im);
          }
        }
      }
    }
    T* out = g + l * plane * 2;
    for (int64_t i = 0; i < plane; ++i) {
      out[2 * i] = g_re[i];
      out[2 * i + 1] = g_im[i];
    }
  });
}

ffi::Error mixing_handler(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y) {
  auto s = mixing_shape("sphcnn_mixing", x, w, *y, false);
  if (s.has_error()) return s.error();
  return cpu::execute(s->is_double, y->element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    mix<T>(pool, *s, static_cast<const T*>(x.untyped_data()), static_cast<const T*>(w.untyped_data()),
           static_cast<T*>(y->untyped_data()));
    return ffi::Error::Success();
  });
}

ffi::Error weight_gradient_handler(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer ct,
                                   ffi::Result<ffi::AnyBuffer> g) {
  auto s = mixing_shape("sphcnn_mixing_weight_gradient", x, ct, *g, true);
  if (s.has_error()) return s.error();
  return cpu::execute(s->is_double, g->element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    weight_gradient<T>(pool, *s, static_cast<const T*>(x.untyped_data()), static_cast<const T*>(ct.untyped_data()),
                       static_cast<T*>(g->untyped_data()));
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingCpu, sphcnn::mixing_handler,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // w
                                  .Ret<xla::ffi::AnyBuffer>());  // y
SPHCNN_TARGET("sphcnn_mixing", SphcnnMixingCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnMixingWeightGradientCpu, sphcnn::weight_gradient_handler,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // ct
                                  .Ret<xla::ffi::AnyBuffer>());  // g
SPHCNN_TARGET("sphcnn_mixing_weight_gradient", SphcnnMixingWeightGradientCpu);
