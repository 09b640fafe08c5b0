// Fourier: F = b + sum_k c_k/k! cos(z_k), z_k = w_k x - phi_k.
// Packed row: [b, c_1..c_n, w_1..w_n, phi_1..phi_n] (P = 3n + 1).
//   dF/db = 1   dF/dc_k = cos(z_k)/k!   dF/dw_k = -c_k/k! sin(z_k) x   dF/dphi_k = c_k/k! sin(z_k)
//   F'(x) = -sum_k c_k/k! w_k sin(z_k)
// and, for the linear extension outside a domain (x a domain end):
//   dF'/dc_k = -w_k sin(z_k)/k!   dF'/dw_k = -c_k/k! (sin z_k + w_k x cos z_k)   dF'/dphi_k = c_k/k! w_k cos z_k
#pragma once
#include "common.h"

// Harmonic frequencies (w_k = k w_1 in every group: Fourier(learn_frequencies=False) and the paper's
// init) take one sin/cos per element instead of one per harmonic: with theta = w_1 x,
// (cos k theta, sin k theta) follow by the angle-addition recurrence (one complex multiply each) and
//   cos z_k = cos k theta cos phi_k + sin k theta sin phi_k,  sin z_k = sin k theta cos phi_k - cos k theta sin phi_k,
// cos phi_k and sin phi_k computed once per group on the host (prepare_forward / prepare_backward).
// `aux` says which: the bound B >= 0 for any frequencies, -(B + 2) for harmonic ones, -1 for libm always.
template <typename T, int N> struct FourierF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? 3 * N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;
    // Arguments |w x - phi| above 8192 leave the float32 reduction's range: the bound is the largest
    // |x| for which every argument stays below it; a vector with any larger x is computed lane by
    // lane with libm in float64.
    static inline bool harmonic(T aux) { return aux < T(-1.5); }
    static inline T bound_of(T aux) { return harmonic(aux) ? -aux - T(2) : aux; }
    static inline bool safe(V x, T aux) { return !any_set(!(vabs(x) <= bound_of(aux))); }
    // prepared forward row, harmonic: [b, A_k = c_k/k! cos phi_k, w_k, B_k = c_k/k! sin phi_k]
    // y = b + sum_k A_k cos k theta + B_k sin k theta;  F' = sum_k k w_1 (B_k cos k theta - A_k sin k theta)
    template <class L> static inline V harmonic_sums(V x, const L& a, i64 pos, int n, V* d) {
        const V w1 = a.param(n + 1, pos);
        V s1, c1;
        sincos_v<true>(w1 * x, s1, c1);
        V ck = c1, sk = s1, y = a.param(0, pos), dd = V{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V A = a.param(k, pos), B = a.param(2 * n + k, pos);
            y += A * ck + B * sk;
            if (d) dd += T(k) * (B * ck - A * sk);
            const V cn = ck * c1 - sk * s1;
            sk = sk * c1 + ck * s1;
            ck = cn;
        }
        if (d) *d = w1 * dd;
        return y;
    }
    template <class L> static inline V harmonic_libm(V x, const L& a, i64 pos, int n, V* d) {
        V y, dd;
        for (int l = 0; l < VT<T>::W; ++l) {
            double out = a.param(0, pos)[l], dout = 0.0;
            for (int k = 1; k <= n; ++k) {
                const double w = a.param(n + k, pos)[l], z = w * double(x[l]);
                const double A = a.param(k, pos)[l], B = a.param(2 * n + k, pos)[l];
                out += A * std::cos(z) + B * std::sin(z);
                dout += w * (B * std::cos(z) - A * std::sin(z));
            }
            y[l] = T(out);
            dd[l] = T(dout);
        }
        if (d) *d = dd;
        return y;
    }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, int, T aux) {
        const int n = N > 0 ? N : n_rt;
        if (harmonic(aux)) return safe(x, aux) ? harmonic_sums(x, a, pos, n, nullptr) : harmonic_libm(x, a, pos, n, nullptr);
        if (!safe(x, aux)) return fwd_libm(x, a, pos, n);
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
    template <class L> static inline V fwd_d(V x, const L& a, i64 pos, int n_rt, int, T aux, V& d) {
        const int n = N > 0 ? N : n_rt;
        const bool fast = safe(x, aux);
        if (harmonic(aux)) return fast ? harmonic_sums(x, a, pos, n, &d) : harmonic_libm(x, a, pos, n, &d);
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
    // g dF/dtheta (and t dF'/dtheta) of harmonic k from sin z_k, cos z_k: the same for both forms.
    template <bool EXT, class L>
    static inline void harmonic_grads(L& a, i64 pos, int n, int k, V x, V g, V t, V amp, V w, V s, V c, V& d) {
        const T f = inv_factorial<T>(k);
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
    // prepared backward row, harmonic: [w_1, c_k/k!, cos phi_k, sin phi_k]; otherwise the raw row.
    template <bool EXT, class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V t) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        V d = V{};
        const bool fast = safe(x, aux);
        if (harmonic(aux)) {
            const V w1 = a.param(0, pos);
            V s1, c1;
            if (fast) {
                sincos_v<true>(w1 * x, s1, c1);
            } else {
                for (int l = 0; l < VT<T>::W; ++l) {
                    s1[l] = T(std::sin(double(w1[l]) * x[l]));
                    c1[l] = T(std::cos(double(w1[l]) * x[l]));
                }
            }
            V ck = c1, sk = s1;
#pragma GCC unroll 16
            for (int k = 1; k <= n; ++k) {
                const V cp = a.param(n + k, pos), sp = a.param(2 * n + k, pos);
                V c = ck * cp + sk * sp, s = sk * cp - ck * sp;
                if (!fast) {  // lane by lane in float64, as the general form
                    for (int l = 0; l < VT<T>::W; ++l) {
                        const double z = double(T(k) * w1[l]) * double(x[l]);  // w_k = fl(k w_1), as stored
                        c[l] = T(std::cos(z) * cp[l] + std::sin(z) * sp[l]);
                        s[l] = T(std::sin(z) * cp[l] - std::cos(z) * sp[l]);
                    }
                }
                harmonic_grads<EXT>(a, pos, n, k, x, g, t, a.param(k, pos), T(k) * w1, s, c, d);
                const V cn = ck * c1 - sk * s1;
                sk = sk * c1 + ck * s1;
                ck = cn;
            }
            return g * d;
        }
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos);
            V s, c;
            sincos_at(fast, w, x, a.param(2 * n + k, pos), s, c);
            harmonic_grads<EXT>(a, pos, n, k, x, g, t, a.param(k, pos) * inv_factorial<T>(k), w, s, c, d);
        }
        return g * d;
    }
    static void prepare_forward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        if (!harmonic(aux)) return;
        for (int k = 1; k <= n; ++k) {
            const double amp = double(raw[k]) * inv_factorial<double>(k), phi = raw[2 * n + k];
            out[k] = T(amp * std::cos(phi));
            out[2 * n + k] = T(amp * std::sin(phi));
        }
    }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        if (!harmonic(aux)) return;
        out[0] = raw[n + 1];  // w_1 (the bias needs no value: dF/db = 1)
        for (int k = 1; k <= n; ++k) {
            const double phi = raw[2 * n + k];
            out[k] = T(double(raw[k]) * inv_factorial<double>(k));
            out[n + k] = T(std::cos(phi));
            out[2 * n + k] = T(std::sin(phi));
        }
    }
    static T aux(const T* params, i64 G, int P_, int n) {
        double wmax = 0.0, pmax = 0.0;
        bool harmonic = n >= 1;
        for (i64 g = 0; g < G; ++g)
            for (int k = 1; k <= n; ++k) {
                const T w = params[g * P_ + n + k];
                wmax = std::max(wmax, std::fabs(double(w)));
                pmax = std::max(pmax, std::fabs(double(params[g * P_ + 2 * n + k])));
                harmonic = harmonic && w == T(k) * params[g * P_ + n + 1];
            }
        if (!(wmax < 1e30) || !(pmax < 8192.0)) return T(-1);  // non-finite or huge: always libm
        // harmonic: every k theta = w_k x stays within 8192 (the phases enter on the host, not the argument)
        const T bound = wmax == 0.0 ? T(INFINITY) : T((8192.0 - (harmonic ? 0.0 : pmax)) / wmax);
        return harmonic ? -bound - T(2) : bound;
    }
};
