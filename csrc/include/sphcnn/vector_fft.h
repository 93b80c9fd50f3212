// A mixed-radix complex FFT over "vector elements": the transform runs along an
// axis of length n whose every element is a contiguous vector of `lanes` complex
// numbers (interleaved real, imaginary), so all lanes are transformed at once with
// unit-stride, vectorizable inner loops. This is the layout of one ring of a
// spatial map, (lon, spin, channel), so no transposition is needed.
//
// Algorithm: Stockham autosort, radices 4, 2, 3, 5 and any odd radix by direct
// DFT (Govindaraju et al., "High performance discrete Fourier transforms on
// graphics processors", SC 2008, algorithm 2, generalized to mixed radices).
// Host only.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace sphcnn {

template <typename T>
class VectorFft {
 public:
  // out_q = sum_k in_k exp(sign * 2 pi i q k / n), unnormalized; sign is +1 or -1.
  VectorFft(int n, int sign) : n_(n), sign_(sign) {
    int rest = n;
    std::vector<int> radices;
    while (rest % 4 == 0) { radices.push_back(4); rest /= 4; }
    while (rest % 2 == 0) { radices.push_back(2); rest /= 2; }
    for (int p = 3; rest > 1; p += 2) {
      while (rest % p == 0) { radices.push_back(p); rest /= p; }
    }
    const double two_pi = 6.283185307179586476925286766559;
    int span = 1;
    for (int radix : radices) {
      Stage st;
      st.radix = radix;
      st.span = span;
      const int64_t period = static_cast<int64_t>(span) * radix;
      st.twiddles.resize(static_cast<size_t>(span) * (radix - 1) * 2);
      for (int k = 0; k < span; ++k) {
        for (int r = 1; r < radix; ++r) {
          const double angle = sign * two_pi * static_cast<double>((static_cast<int64_t>(k) * r) % period) /
                               static_cast<double>(period);
          st.twiddles[(static_cast<size_t>(k) * (radix - 1) + (r - 1)) * 2] = static_cast<T>(std::cos(angle));
          st.twiddles[(static_cast<size_t>(k) * (radix - 1) + (r - 1)) * 2 + 1] = static_cast<T>(std::sin(angle));
        }
      }
      st.roots.resize(static_cast<size_t>(radix) * 2);
      for (int r = 0; r < radix; ++r) {
        const double angle = sign * two_pi * r / radix;
        st.roots[2 * r] = static_cast<T>(std::cos(angle));
        st.roots[2 * r + 1] = static_cast<T>(std::sin(angle));
      }
      stages_.push_back(std::move(st));
      span *= radix;
    }
  }

  int size() const { return n_; }

  // Size in T values of the work buffer execute() needs.
  static int64_t work_size(int n, int64_t lanes) { return 4 * static_cast<int64_t>(n) * lanes; }

  // in, out: n * lanes complex values (interleaved), or n * lanes real values in
  // when real_input (the imaginary parts are zero); work: work_size(n, lanes)
  // values. in is not modified and may not alias out or work.
  //
  // The butterflies run on split real/imaginary planes (element k of a plane is
  // the `lanes` reals at [k * lanes, (k + 1) * lanes)), so every inner loop is a
  // plain unit-stride loop over lanes that compilers vectorize.
  void execute(const T* in, T* out, T* work, int64_t lanes, bool real_input = false) const {
    const int64_t plane = static_cast<int64_t>(n_) * lanes;
    T* a_re = work;
    T* a_im = work + plane;
    T* b_re = work + 2 * plane;
    T* b_im = work + 3 * plane;
    if (real_input) {
      for (int64_t i = 0; i < plane; ++i) {
        a_re[i] = in[i];
        a_im[i] = T(0);
      }
    } else {
      for (int64_t i = 0; i < plane; ++i) {
        a_re[i] = in[2 * i];
        a_im[i] = in[2 * i + 1];
      }
    }
    const int count = static_cast<int>(stages_.size());
    for (int i = 0; i < count; ++i) {
      run_stage(stages_[i], a_re, a_im, b_re, b_im, lanes);
      std::swap(a_re, b_re);
      std::swap(a_im, b_im);
    }
    for (int64_t i = 0; i < plane; ++i) {
      out[2 * i] = a_re[i];
      out[2 * i + 1] = a_im[i];
    }
  }

 private:
  struct Stage {
    int radix;
    int span;                 // length of the sub-transforms already combined
    std::vector<T> twiddles;  // [span][radix - 1] complex
    std::vector<T> roots;     // [radix] complex: exp(sign 2 pi i r / radix)
  };

  // Pointers to the real and imaginary planes of the radix inputs and outputs.
  struct Ports {
    const T* x_re[16];
    const T* x_im[16];
    T* y_re[16];
    T* y_im[16];
  };

  void run_stage(const Stage& st, const T* src_re, const T* src_im, T* dst_re, T* dst_im,
                 int64_t lanes) const {
    const int radix = st.radix;
    const int groups = n_ / radix;
    std::vector<const T*> big_x_re, big_x_im;
    std::vector<T*> big_y_re, big_y_im;
    Ports ports;
    const T** x_re = ports.x_re;
    const T** x_im = ports.x_im;
    T** y_re = ports.y_re;
    T** y_im = ports.y_im;
    if (radix > 16) {
      big_x_re.resize(radix);
      big_x_im.resize(radix);
      big_y_re.resize(radix);
      big_y_im.resize(radix);
      x_re = big_x_re.data();
      x_im = big_x_im.data();
      y_re = big_y_re.data();
      y_im = big_y_im.data();
    }
    for (int j = 0; j < groups; ++j) {
      const int k = j % st.span;
      const int64_t base = static_cast<int64_t>(j / st.span) * st.span * radix + k;
      for (int r = 0; r < radix; ++r) {
        const int64_t in_off = (static_cast<int64_t>(j) + static_cast<int64_t>(r) * groups) * lanes;
        const int64_t out_off = (base + static_cast<int64_t>(r) * st.span) * lanes;
        x_re[r] = src_re + in_off;
        x_im[r] = src_im + in_off;
        y_re[r] = dst_re + out_off;
        y_im[r] = dst_im + out_off;
      }
      const T* tw = st.twiddles.data() + static_cast<size_t>(k) * (radix - 1) * 2;
      switch (radix) {
        case 2: radix2(x_re, x_im, y_re, y_im, tw, lanes); break;
        case 4: radix4(x_re, x_im, y_re, y_im, tw, lanes); break;
        case 3: radix3(x_re, x_im, y_re, y_im, tw, lanes); break;
        case 5: radix5(x_re, x_im, y_re, y_im, tw, lanes); break;
        default: radix_generic(radix, x_re, x_im, y_re, y_im, tw, st.roots.data(), lanes); break;
      }
    }
  }

  static void radix2(const T** xr, const T** xi, T** yr, T** yi, const T* tw, int64_t lanes) {
    const T* __restrict x0r = xr[0];
    const T* __restrict x0i = xi[0];
    const T* __restrict x1r = xr[1];
    const T* __restrict x1i = xi[1];
    T* __restrict y0r = yr[0];
    T* __restrict y0i = yi[0];
    T* __restrict y1r = yr[1];
    T* __restrict y1i = yi[1];
    const T wr = tw[0], wi = tw[1];
#pragma omp simd
    for (int64_t v = 0; v < lanes; ++v) {
      const T br = x1r[v] * wr - x1i[v] * wi;
      const T bi = x1r[v] * wi + x1i[v] * wr;
      y0r[v] = x0r[v] + br;
      y0i[v] = x0i[v] + bi;
      y1r[v] = x0r[v] - br;
      y1i[v] = x0i[v] - bi;
    }
  }

  void radix4(const T** xr, const T** xi, T** yr, T** yi, const T* tw, int64_t lanes) const {
    const T* __restrict x0r = xr[0];
    const T* __restrict x0i = xi[0];
    const T* __restrict x1r = xr[1];
    const T* __restrict x1i = xi[1];
    const T* __restrict x2r = xr[2];
    const T* __restrict x2i = xi[2];
    const T* __restrict x3r = xr[3];
    const T* __restrict x3i = xi[3];
    T* __restrict y0r = yr[0];
    T* __restrict y0i = yi[0];
    T* __restrict y1r = yr[1];
    T* __restrict y1i = yi[1];
    T* __restrict y2r = yr[2];
    T* __restrict y2i = yi[2];
    T* __restrict y3r = yr[3];
    T* __restrict y3i = yi[3];
    const T w1r = tw[0], w1i = tw[1], w2r = tw[2], w2i = tw[3], w3r = tw[4], w3i = tw[5];
    const T sg = static_cast<T>(sign_);
#pragma omp simd
    for (int64_t v = 0; v < lanes; ++v) {
      const T a1r = x1r[v] * w1r - x1i[v] * w1i, a1i = x1r[v] * w1i + x1i[v] * w1r;
      const T a2r = x2r[v] * w2r - x2i[v] * w2i, a2i = x2r[v] * w2i + x2i[v] * w2r;
      const T a3r = x3r[v] * w3r - x3i[v] * w3i, a3i = x3r[v] * w3i + x3i[v] * w3r;
      const T t0r = x0r[v] + a2r, t0i = x0i[v] + a2i;
      const T t1r = x0r[v] - a2r, t1i = x0i[v] - a2i;
      const T t2r = a1r + a3r, t2i = a1i + a3i;
      // t3 = (a1 - a3) * (sign i)
      const T t3r = -sg * (a1i - a3i), t3i = sg * (a1r - a3r);
      y0r[v] = t0r + t2r;
      y0i[v] = t0i + t2i;
      y2r[v] = t0r - t2r;
      y2i[v] = t0i - t2i;
      y1r[v] = t1r + t3r;
      y1i[v] = t1i + t3i;
      y3r[v] = t1r - t3r;
      y3i[v] = t1i - t3i;
    }
  }

  void radix3(const T** xr, const T** xi, T** yr, T** yi, const T* tw, int64_t lanes) const {
    const T* __restrict x0r = xr[0];
    const T* __restrict x0i = xi[0];
    const T* __restrict x1r = xr[1];
    const T* __restrict x1i = xi[1];
    const T* __restrict x2r = xr[2];
    const T* __restrict x2i = xi[2];
    T* __restrict y0r = yr[0];
    T* __restrict y0i = yi[0];
    T* __restrict y1r = yr[1];
    T* __restrict y1i = yi[1];
    T* __restrict y2r = yr[2];
    T* __restrict y2i = yi[2];
    const T w1r = tw[0], w1i = tw[1], w2r = tw[2], w2i = tw[3];
    const T h = static_cast<T>(sign_ * 0.86602540378443864676372317075294);  // sign sqrt(3)/2
#pragma omp simd
    for (int64_t v = 0; v < lanes; ++v) {
      const T a1r = x1r[v] * w1r - x1i[v] * w1i, a1i = x1r[v] * w1i + x1i[v] * w1r;
      const T a2r = x2r[v] * w2r - x2i[v] * w2i, a2i = x2r[v] * w2i + x2i[v] * w2r;
      const T sr = a1r + a2r, si = a1i + a2i;
      const T dr = a1r - a2r, di = a1i - a2i;
      const T mr = x0r[v] - static_cast<T>(0.5) * sr, mi = x0i[v] - static_cast<T>(0.5) * si;
      // n = (sign i sqrt(3)/2) d
      const T nr = -h * di, ni = h * dr;
      y0r[v] = x0r[v] + sr;
      y0i[v] = x0i[v] + si;
      y1r[v] = mr + nr;
      y1i[v] = mi + ni;
      y2r[v] = mr - nr;
      y2i[v] = mi - ni;
    }
  }

  void radix5(const T** xr, const T** xi, T** yr, T** yi, const T* tw, int64_t lanes) const {
    const T c1 = static_cast<T>(0.30901699437494742410229341718282);   // cos(2 pi / 5)
    const T c2 = static_cast<T>(-0.80901699437494742410229341718282);  // cos(4 pi / 5)
    const T s1 = static_cast<T>(sign_ * 0.95105651629515357211643933337938);  // sign sin(2 pi / 5)
    const T s2 = static_cast<T>(sign_ * 0.58778525229247312916870595463907);  // sign sin(4 pi / 5)
    const T* __restrict x0r = xr[0];
    const T* __restrict x0i = xi[0];
    T* __restrict y0r = yr[0];
    T* __restrict y0i = yi[0];
#pragma omp simd
    for (int64_t v = 0; v < lanes; ++v) {
      T ar[5], ai[5];
      ar[0] = x0r[v];
      ai[0] = x0i[v];
      for (int r = 1; r < 5; ++r) {
        const T pr = xr[r][v], pi = xi[r][v];
        ar[r] = pr * tw[2 * (r - 1)] - pi * tw[2 * (r - 1) + 1];
        ai[r] = pr * tw[2 * (r - 1) + 1] + pi * tw[2 * (r - 1)];
      }
      const T t1r = ar[1] + ar[4], t1i = ai[1] + ai[4];
      const T t2r = ar[2] + ar[3], t2i = ai[2] + ai[3];
      const T t3r = ar[1] - ar[4], t3i = ai[1] - ai[4];
      const T t4r = ar[2] - ar[3], t4i = ai[2] - ai[3];
      const T p1r = ar[0] + c1 * t1r + c2 * t2r, p1i = ai[0] + c1 * t1i + c2 * t2i;
      const T p2r = ar[0] + c2 * t1r + c1 * t2r, p2i = ai[0] + c2 * t1i + c1 * t2i;
      // q1 = i (s1 t3 + s2 t4), q2 = i (s2 t3 - s1 t4)
      const T q1r = -(s1 * t3i + s2 * t4i), q1i = s1 * t3r + s2 * t4r;
      const T q2r = -(s2 * t3i - s1 * t4i), q2i = s2 * t3r - s1 * t4r;
      y0r[v] = ar[0] + t1r + t2r;
      y0i[v] = ai[0] + t1i + t2i;
      yr[1][v] = p1r + q1r;
      yi[1][v] = p1i + q1i;
      yr[4][v] = p1r - q1r;
      yi[4][v] = p1i - q1i;
      yr[2][v] = p2r + q2r;
      yi[2][v] = p2i + q2i;
      yr[3][v] = p2r - q2r;
      yi[3][v] = p2i - q2i;
    }
  }

  static void radix_generic(int radix, const T** xr, const T** xi, T** yr, T** yi, const T* tw,
                            const T* roots, int64_t lanes) {
    for (int q = 0; q < radix; ++q) {
      T* __restrict outr = yr[q];
      T* __restrict outi = yi[q];
      for (int64_t v = 0; v < lanes; ++v) {
        outr[v] = xr[0][v];
        outi[v] = xi[0][v];
      }
      for (int r = 1; r < radix; ++r) {
        // twiddle w_r times root^(q r)
        const int e = static_cast<int>((static_cast<int64_t>(q) * r) % radix);
        const T wr = tw[2 * (r - 1)], wi = tw[2 * (r - 1) + 1];
        const T cr = wr * roots[2 * e] - wi * roots[2 * e + 1];
        const T ci = wr * roots[2 * e + 1] + wi * roots[2 * e];
        const T* __restrict inr = xr[r];
        const T* __restrict ini = xi[r];
#pragma omp simd
        for (int64_t v = 0; v < lanes; ++v) {
          outr[v] += inr[v] * cr - ini[v] * ci;
          outi[v] += inr[v] * ci + ini[v] * cr;
        }
      }
    }
  }

  int n_;
  int sign_;
  std::vector<Stage> stages_;
};

}  // namespace sphcnn
