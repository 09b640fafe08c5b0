// Fourier: F = b + sum_k c_k/k! cos(z_k), z_k = w_k x - phi_k.
// Packed row: [b, c_1..c_n, w_1..w_n, phi_1..phi_n] (P = 3n + 1).
//   dF/db = 1   dF/dc_k = cos(z_k)/k!   dF/dw_k = -c_k/k! sin(z_k) x   dF/dphi_k = c_k/k! sin(z_k)
//   F'(x) = -sum_k c_k/k! w_k sin(z_k)
// and, for the linear extension outside a domain (x a domain end):
//   dF'/dc_k = -w_k sin(z_k)/k!   dF'/dw_k = -c_k/k! (sin z_k + w_k x cos z_k)   dF'/dphi_k = c_k/k! w_k cos z_k
#pragma once
#include "common.h"

template <typename T, int N> struct FourierF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? 3 * N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;
    // Arguments |w x - phi| above 8192 leave the float32 reduction's range: `aux` is the largest
    // |x| for which every argument stays below it; a vector with any larger x is computed lane by
    // lane with libm in float64.
    static inline bool safe(V x, T bound) { return !any_set(!(vabs(x) <= bound)); }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, int, T bound) {
        const int n = N > 0 ? N : n_rt;
        if (!safe(x, bound)) return fwd_libm(x, a, pos, n);
        V y = a.param(0, pos);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            V s, c;
            sincos_v<false>(a.param(n + k, pos) * x - a.param(2 * n + k, pos), s, c);
            y += a.param(k, pos) * inv_factorial<T>(k) * c;
        }
        return y;
    }
    template <class L> static V fwd_libm(V x, const L& a, i64 pos, int n) {
        V y;
        for (int l = 0; l < VT<T>::W; ++l) {
            double out = a.param(0, pos)[l];
            for (int k = 1; k <= n; ++k)
                out += double(a.param(k, pos)[l]) * inv_factorial<double>(k) *
                       std::cos(double(a.param(n + k, pos)[l]) * x[l] - a.param(2 * n + k, pos)[l]);
            y[l] = T(out);
        }
        return y;
    }
    // F and F' (the linear extension); lanes beyond the fast reduction's range in float64 libm.
    template <class L> static inline V fwd_d(V x, const L& a, i64 pos, int n_rt, int, T bound, V& d) {
        const int n = N > 0 ? N : n_rt;
        const bool fast = safe(x, bound);
        V y = a.param(0, pos);
        d = V{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos), amp = a.param(k, pos) * inv_factorial<T>(k);
            V s, c;
            sincos_at(fast, w, x, a.param(2 * n + k, pos), s, c);
            y += amp * c;
            d -= amp * w * s;
        }
        return y;
    }
    // sin and cos of w x - phi: SIMD when every lane is in range, else lane by lane in float64.
    static inline void sincos_at(bool fast, V w, V x, V phi, V& s, V& c) {
        if (fast) {
            sincos_v<true>(w * x - phi, s, c);
            return;
        }
        for (int l = 0; l < VT<T>::W; ++l) {
            const double z = double(w[l]) * x[l] - phi[l];
            s[l] = T(std::sin(z));
            c[l] = T(std::cos(z));
        }
    }
    template <bool EXT, class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T bound, V t) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        V d = V{};
        const bool fast = safe(x, bound);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos);
            V s, c;
            sincos_at(fast, w, x, a.param(2 * n + k, pos), s, c);
            const T f = inv_factorial<T>(k);
            const V amp = a.param(k, pos) * f;  // c_k / k!
            const V gs = g * amp * s;
            d -= amp * w * s;
            if (EXT) {  // + t dF'/dtheta
                const V gt = g * t, wc = w * c;
                a.acc(k, pos, g * c * f - gt * f * w * s);
                a.acc(n + k, pos, -(gs * x) - gt * amp * (s + x * wc));
                a.acc(2 * n + k, pos, gs + gt * amp * wc);
            } else {
                a.acc(k, pos, g * c * f);
                a.acc(n + k, pos, -(gs * x));
                a.acc(2 * n + k, pos, gs);
            }
        }
        return g * d;
    }
    static void prepare_forward(const T* raw, T* out, int, int p) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T* params, i64 G, int P_, int n) {
        double wmax = 0.0, pmax = 0.0;
        for (i64 g = 0; g < G; ++g)
            for (int k = 1; k <= n; ++k) {
                wmax = std::max(wmax, std::fabs(double(params[g * P_ + n + k])));
                pmax = std::max(pmax, std::fabs(double(params[g * P_ + 2 * n + k])));
            }
        if (!(wmax < 1e30) || !(pmax < 8192.0)) return T(-1);  // non-finite or huge: always libm
        return wmax == 0.0 ? T(INFINITY) : T((8192.0 - pmax) / wmax);
    }
};
