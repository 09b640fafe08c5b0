// Rational (Pade) activation with the "safe" denominators of PAU's rational-activations:
//   F = P(x) / Q(x),  P = sum_{i=0..m} a_i x^i,
//   version A: Q = 1 + sum_{j=1..n} |b_j x^j|        version B: Q = 1 + |S|, S = sum_{j=1..n} b_j x^j
// Packed row: [a_0..a_m, b_1..b_n] (P = m + 1 + n); the kernels specialise on m, n is P - m - 1.
//   dF/da_i = x^i / Q
//   dF/db_j = -F/Q * dQ/db_j,   A: dQ/db_j = sgn(b_j x^j) x^j     B: dQ/db_j = sgn(S) x^j
//   F' = (P' - F Q') / Q,       A: Q' = sum_j sgn(b_j x^j) j b_j x^(j-1)     B: Q' = vsgn(S) S'
// (sgn(0) = 0, as the reference's abs). Q >= 1, so there is no pole; +-inf inputs are NaN.
#pragma once
#include "common.h"

template <typename T, int N, int VERSION> struct RationalF {
    typedef typename VT<T>::V V;
    static constexpr int P = MAX_P;

    // The kernels specialise on the numerator degree N; the common m/(m-1) shapes (PAU's and KAT's
    // 5/4) also get the denominator degree at compile time, so every loop unrolls.
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int m_rt, int p, T aux) {
        if (N > 1 && p == 2 * N) return fwd_impl<(N > 1 ? N - 1 : 1)>(x, a, pos, m_rt, p);
        return fwd_impl<0>(x, a, pos, m_rt, p);
    }
    template <class L> static inline V bwd(V x, V g, L& a, i64 pos, int m_rt, int p, T aux) {
        if (N > 1 && p == 2 * N) return bwd_impl<(N > 1 ? N - 1 : 1)>(x, g, a, pos, m_rt, p);
        return bwd_impl<0>(x, g, a, pos, m_rt, p);
    }

    template <int D, class L> static inline V fwd_impl(V x, const L& a, i64 pos, int m_rt, int p) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1, top = std::max(m, n);
        V num = a.param(0, pos), den = V{}, xp = splat<V>(T(1));
#pragma GCC unroll 16
        for (int j = 1; j <= top; ++j) {
            xp *= x;
            if (j <= m) num += a.param(j, pos) * xp;
            if (j <= n) {
                const V t = a.param(m + j, pos) * xp;
                den += VERSION == 0 ? vabs(t) : t;
            }
        }
        return num / (T(1) + (VERSION == 0 ? den : vabs(den)));
    }

    template <int D, class L> static inline V bwd_impl(V x, V g, L& a, i64 pos, int m_rt, int p) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1, top = std::max(m, n);
        V num = a.param(0, pos), dnum = V{}, den = V{}, dden = V{}, xp = splat<V>(T(1));
#pragma GCC unroll 16
        for (int j = 1; j <= top; ++j) {
            const V prev = xp;  // x^(j-1)
            xp *= x;
            if (j <= m) {
                const V aj = a.param(j, pos);
                num += aj * xp;
                dnum += T(j) * aj * prev;
            }
            if (j <= n) {
                const V bj = a.param(m + j, pos), t = bj * xp;
                if (VERSION == 0) {
                    den += vabs(t);
                    dden += vsgn(t) * T(j) * bj * prev;
                } else {
                    den += t;
                    dden += T(j) * bj * prev;
                }
            }
        }
        const V s = VERSION == 0 ? V{} : vsgn(den);  // version B: sign of S
        const V q = T(1) + (VERSION == 0 ? den : vabs(den));
        const V inv = T(1) / q, f = num * inv;
        const V dq = VERSION == 0 ? dden : s * dden;
        const V gi = g * inv, gfi = gi * f;
        xp = splat<V>(T(1));
#pragma GCC unroll 16
        for (int j = 0; j <= top; ++j) {
            if (j > 0) xp *= x;
            if (j <= m) a.acc(j, pos, gi * xp);
            if (j >= 1 && j <= n) {
                const V dqdb = VERSION == 0 ? vsgn(a.param(m + j, pos) * xp) * xp : s * xp;
                a.acc(m + j, pos, -(gfi * dqdb));
            }
        }
        return gi * (dnum - f * dq);
    }
    static void prepare_forward(const T* raw, T* out, int, int p) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T*, i64, int, int) { return T(0); }
};
template <typename T, int N> using RationalAF = RationalF<T, N, 0>;
template <typename T, int N> using RationalBF = RationalF<T, N, 1>;
