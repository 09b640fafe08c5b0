// Fourier: F = b + sum_k c_k/k! cos(z_k), z_k = w_k x - phi_k.
// Packed row: [b, c_1..c_n, w_1..w_n, phi_1..phi_n] (P = 3n + 1).
//   dF/db = 1   dF/dc_k = cos(z_k)/k!   dF/dw_k = -c_k/k! sin(z_k) x   dF/dphi_k = c_k/k! sin(z_k)
//   F'(x) = -sum_k c_k/k! w_k sin(z_k)
// and, for the linear extension outside a domain (x a domain end):
//   dF'/dc_k = -w_k sin(z_k)/k!   dF'/dw_k = -c_k/k! (sin z_k + w_k x cos z_k)   dF'/dphi_k = c_k/k! w_k cos z_k
// The backward accumulates the per-element sums without their per-group factors,
//   S_c = sum g (cos z - t w sin z),  S_w = sum g (x sin z + t (sin z + w x cos z)),  S_phi = sum g (sin z + t w cos z)
// (t = 0 inside the domain), and finish_backward scales them in float64: dc_k = S_c / k!,
// dw_k = -(c_k/k!) S_w, dphi_k = (c_k/k!) S_phi. Per harmonic that leaves one sin/cos and six vector
// operations per element. Harmonic rows keep the c_k and phi_k sums unrotated (harmonic_sums below).
#pragma once
#include "common.h"

// Harmonic frequencies (w_k = k w_1 in every group: Fourier(learn_frequencies=False) and the paper's
// init) take one sin/cos per element instead of one per harmonic: with theta = w_1 x,
// (cos k theta, sin k theta) follow by angle addition (one complex multiply each, in a product tree:
// harmonics() below) and
//   cos z_k = cos k theta cos phi_k + sin k theta sin phi_k,  sin z_k = sin k theta cos phi_k - cos k theta sin phi_k,
// cos phi_k and sin phi_k computed once per group on the host (prepare_forward / prepare_backward).
// `aux` says which: the bound B >= 0 for any frequencies, -(B + 2) for harmonic ones, -1 for libm always.
template <typename T, int N> struct FourierF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? 3 * N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;
    // Arguments |w x - phi| above 8192 leave sincos_v's reduction's range (sincospi_v's, below, would
    // reach further; one bound serves both): the bound is the largest |x| for which every argument
    // stays below it; a vector with any larger x is computed lane by lane with libm in float64 (out
    // of line: the fast loop keeps its registers).
    static inline bool harmonic(T aux) { return aux < T(-1.5); }
    static constexpr int M = N > 0 ? N : OA_MAX_DEGREE;  // the most harmonics a row has
    // Any frequencies, in float32: the fast path's argument in half-turns, u_k = w'_k x - phi'_k with
    // w'_k = fl(w_k / pi) and phi'_k = fl(phi_k / pi) prepared per group (2n extra columns, from p + 1),
    // so that the reduction is exact (sincospi_v): three adds instead of three FMAs per sin/cos
    // (kernel-only A/B, Fourier-5, 2 threads, 4M float32: forward 0.82x, backward 0.92x). Rounding
    // w'_k and phi'_k adds at most eps/2 (|w_k x| + |phi_k|) to the argument's own rounding eps/2 |z_k|
    // (random parameters, |x| ~ 4: max error of F 8.9e-7 of max |F| instead of 8.2e-7, of F' 6.2e-7
    // instead of 4.5e-7). The libm lanes keep w_k and phi_k (their float64 arguments stay exact), and
    // the factors w_k of F' and of the linear extension's terms are the raw ones. (Harmonic rows get
    // the extra columns too, unused: the width is fixed per degree, before the rows are inspected.)
    static constexpr bool HALF_TURNS = std::is_same<T, float>::value;
    static constexpr int PX = HALF_TURNS ? 2 * M : 0;
    static int extra(int n) { return HALF_TURNS ? 2 * n : 0; }
    // cos k theta and sin k theta for k = 1..n from those of theta by angle addition,
    // (k theta) = (i theta) + (j theta) with j = k / 2, i = k - j: a product tree, so that harmonic k
    // is ceil(log2 k) complex multiplies deep instead of k - 1 (the one-step recurrence), with the
    // same operation count and a rounding error that still grows as k (the Chebyshev recurrence's
    // two FMAs per harmonic grow it as k^2). Kernel-only, fixed-frequency Fourier-5, 2 threads:
    // forward -13%, backward -5%.
    static OA_INLINE void harmonics(V c1, V s1, int n, V* C, V* S) {
        C[1] = c1, S[1] = s1;
#pragma GCC unroll 16
        for (int k = 2; k <= n; ++k) {
            const int j = k / 2, i = k - j;
            C[k] = C[i] * C[j] - S[i] * S[j];
            S[k] = S[i] * C[j] + C[i] * S[j];
        }
    }
    static inline T bound_of(T aux) { return harmonic(aux) ? -aux - T(2) : aux; }
    static inline bool safe(V x, T aux) { return !any_set(!(vabs(x) <= bound_of(aux))); }

    // Prepared forward row: any frequencies [b, a_k = c_k/k!, w_k, phi_k]; harmonic ones
    // [b, A_k = a_k cos phi_k, w_k, B_k = a_k sin phi_k], so that F = b + sum_k A_k cos k theta + B_k sin k theta
    // and F' = sum_k w_k (B_k cos k theta - A_k sin k theta).
    template <class L> static inline V forward_sums(V x, const L& a, i64 pos, int n, int p, bool harm, V* d) {
        V y = a.param(0, pos), dd = V{};
        if (harm) {
            const V w1 = a.param(n + 1, pos);
            V s1, c1;
            sincos_v<true>(w1 * x, s1, c1);
            V C[M + 1], S[M + 1];
            harmonics(c1, s1, n, C, S);
            V ys = V{}, ds = V{};  // the sine terms' sums: two short chains of FMAs, not one long one
#pragma GCC unroll 16
            for (int k = 1; k <= n; ++k) {
                const V A = a.param(k, pos), B = a.param(2 * n + k, pos);
                y += A * C[k];
                ys += B * S[k];
                if (d) dd += T(k) * (B * C[k]);
                if (d) ds += T(k) * (A * S[k]);
            }
            if (d) *d = w1 * (dd - ds);
            return y + ys;
        }
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V amp = a.param(k, pos), w = a.param(n + k, pos);
            V s, c;
            if constexpr (HALF_TURNS) {
                const V u = vfma(a.param(p + k, pos), x, -a.param(p + n + k, pos));
                if (d) sincospi_v<true>(u, s, c);
                else sincospi_v<false>(u, s, c);
            } else {
                const V z = vfma(w, x, -a.param(2 * n + k, pos));
                if (d) sincos_v<true>(z, s, c);
                else sincos_v<false>(z, s, c);
            }
            y += amp * c;
            if (d) dd -= amp * w * s;
        }
        if (d) *d = dd;
        return y;
    }
    // The same sums lane by lane in float64 (rounded once at the end); the harmonic row's A_k, B_k
    // take the unshifted angle w_k x.
    template <class L> __attribute__((noinline, cold)) static V forward_libm(V x, const L& a, i64 pos, int n, bool harm, V* d) {
        V y, dd;
        for (int l = 0; l < VT<T>::W; ++l) {
            double out = a.param(0, pos)[l], dout = 0.0;
            for (int k = 1; k <= n; ++k) {
                const double amp = a.param(k, pos)[l], w = a.param(n + k, pos)[l], phi = a.param(2 * n + k, pos)[l];
                const double z = w * double(x[l]) - (harm ? 0.0 : phi), cz = std::cos(z), sz = std::sin(z);
                out += harm ? amp * cz + phi * sz : amp * cz;
                dout += harm ? w * (phi * cz - amp * sz) : -amp * w * sz;
            }
            y[l] = T(out);
            dd[l] = T(dout);
        }
        if (d) *d = dd;
        return y;
    }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, int p, T aux) {
        const int n = N > 0 ? N : n_rt;
        return safe(x, aux) ? forward_sums(x, a, pos, n, p, harmonic(aux), nullptr)
                            : forward_libm(x, a, pos, n, harmonic(aux), nullptr);
    }
    // F and F' (the linear extension).
    template <class L> static inline V fwd_d(V x, const L& a, i64 pos, int n_rt, int p, T aux, V& d) {
        const int n = N > 0 ? N : n_rt;
        return safe(x, aux) ? forward_sums(x, a, pos, n, p, harmonic(aux), &d)
                            : forward_libm(x, a, pos, n, harmonic(aux), &d);
    }

    // One harmonic's unscaled sums (see the top of the file) and its term of F', from sin z, cos z.
    template <bool EXT, class L>
    static inline void harmonic_grads(L& a, i64 pos, int n, int k, V x, V g, V gx, V t, V aw, V w, V s, V c, V& d) {
        d -= aw * s;
        if (EXT) {
            const V gs = g * s, gt = g * t, wc = w * c;
            a.acc(k, pos, g * c - gt * w * s);
            a.acc(n + k, pos, gs * x + gt * (s + x * wc));
            a.acc(2 * n + k, pos, gs + gt * wc);
        } else {  // one FMA each (gx = g x once per element)
            a.acc(k, pos, g * c);
            a.acc(n + k, pos, gx * s);
            a.acc(2 * n + k, pos, g * s);
        }
    }
    // The harmonic backward's sums, from cos k theta = ck and sin k theta = sk: the cosine and phase
    // sums stay unrotated, G_c = sum g ck and G_s = sum g sk (finish_backward rotates them by phi_k:
    // S_c = cos phi G_c + sin phi G_s, S_phi = cos phi G_s - sin phi G_c), so only sin z_k is formed.
    // With EXT the two sums' terms are rotated back by -phi_k here instead.
    template <bool EXT, class L>
    static inline void harmonic_sums(L& a, i64 pos, int n, int k, V x, V g, V gx, V t, V aw, V w, V cp, V sp, V ck,
                                     V sk, V& d) {
        const V s = sk * cp - ck * sp;  // sin z_k
        d -= aw * s;
        if (EXT) {
            const V c = ck * cp + sk * sp, gt = g * t, wc = w * c;
            const V dc = g * c - gt * w * s, ds = g * s + gt * wc;
            a.acc(k, pos, cp * dc - sp * ds);
            a.acc(n + k, pos, gx * s + gt * (s + x * wc));
            a.acc(2 * n + k, pos, sp * dc + cp * ds);
        } else {
            a.acc(k, pos, g * ck);
            a.acc(n + k, pos, gx * s);
            a.acc(2 * n + k, pos, g * sk);
        }
    }
    // Prepared backward row: any frequencies [-, aw_k = c_k/k! w_k, w_k, phi_k]; harmonic ones
    // [w_1, aw_k, cos phi_k, sin phi_k] (w_k = fl(k w_1), as stored).
    template <bool EXT, bool FAST, class L>
    static inline V backward_sums(V x, V g, L& a, i64 pos, int n, int p, bool harm, V t) {
        V d = V{};
        const V gx = g * x;
        if (harm) {
            const V w1 = a.param(0, pos);
            V s1{}, c1{};
            if (FAST) sincos_v<true>(w1 * x, s1, c1);
            V C[M + 1], S[M + 1];
            if (FAST) harmonics(c1, s1, n, C, S);
#pragma GCC unroll 16
            for (int k = 1; k <= n; ++k) {
                const V wk = T(k) * w1;
                if (!FAST) {
                    for (int l = 0; l < VT<T>::W; ++l) {
                        const double z = double(wk[l]) * double(x[l]);
                        C[k][l] = T(std::cos(z));
                        S[k][l] = T(std::sin(z));
                    }
                }
                harmonic_sums<EXT>(a, pos, n, k, x, g, gx, t, a.param(k, pos), wk, a.param(n + k, pos),
                                   a.param(2 * n + k, pos), C[k], S[k], d);
            }
            return g * d;
        }
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos), phi = a.param(2 * n + k, pos);
            V s, c;
            if constexpr (FAST && HALF_TURNS) {
                sincospi_v<true>(vfma(a.param(p + k, pos), x, -a.param(p + n + k, pos)), s, c);
            } else if constexpr (FAST) {
                sincos_v<true>(vfma(w, x, -phi), s, c);
            } else {
                for (int l = 0; l < VT<T>::W; ++l) {
                    const double z = double(w[l]) * x[l] - phi[l];
                    s[l] = T(std::sin(z));
                    c[l] = T(std::cos(z));
                }
            }
            harmonic_grads<EXT>(a, pos, n, k, x, g, gx, t, a.param(k, pos), w, s, c, d);
        }
        return g * d;
    }
    template <bool EXT, class L>
    __attribute__((noinline, cold)) static V backward_libm(V x, V g, L& a, i64 pos, int n, int p, bool harm, V t) {
        return backward_sums<EXT, false>(x, g, a, pos, n, p, harm, t);
    }
    template <bool EXT, class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, int p, T aux, V t) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        return safe(x, aux) ? backward_sums<EXT, true>(x, g, a, pos, n, p, harmonic(aux), t)
                            : backward_libm<EXT>(x, g, a, pos, n, p, harmonic(aux), t);
    }

    // w'_k = w_k / pi and phi'_k = phi_k / pi in columns p + k and p + n + k (HALF_TURNS).
    static void prepare_half_turns(const T* raw, T* out, int n, int p) {
        if constexpr (HALF_TURNS)
            for (int k = 1; k <= n; ++k) {
                out[p + k] = T(double(raw[n + k]) / M_PI);
                out[p + n + k] = T(double(raw[2 * n + k]) / M_PI);
            }
    }
    static void prepare_forward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        prepare_half_turns(raw, out, n, p);
        for (int k = 1; k <= n; ++k) {
            const double amp = double(raw[k]) * inv_factorial<double>(k), phi = raw[2 * n + k];
            out[k] = T(harmonic(aux) ? amp * std::cos(phi) : amp);
            if (harmonic(aux)) out[2 * n + k] = T(amp * std::sin(phi));
        }
    }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        prepare_half_turns(raw, out, n, p);
        if (harmonic(aux)) out[0] = raw[n + 1];  // w_1 (the bias needs no value: dF/db = 1)
        for (int k = 1; k <= n; ++k) {
            out[k] = T(double(raw[k]) * inv_factorial<double>(k) * double(raw[n + k]));
            if (!harmonic(aux)) continue;
            const double phi = raw[2 * n + k];
            out[n + k] = T(std::cos(phi));
            out[2 * n + k] = T(std::sin(phi));
        }
    }
    // The sums' per-group factors (see the top of the file), on the raw row.
    // Harmonic rows first rotate G_c, G_s (in the c_k and phi_k columns) into S_c, S_phi.
    static void finish_backward(const T* raw, double* grad, int n, int, T aux) {
        for (int k = 1; k <= n; ++k) {
            const double f = inv_factorial<double>(k), amp = double(raw[k]) * f;
            if (harmonic(aux)) {
                const double phi = raw[2 * n + k], cp = std::cos(phi), sp = std::sin(phi);
                const double gc = grad[k], gs = grad[2 * n + k];
                grad[k] = cp * gc + sp * gs;
                grad[2 * n + k] = cp * gs - sp * gc;
            }
            grad[k] *= f;
            grad[n + k] *= -amp;
            grad[2 * n + k] *= amp;
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
