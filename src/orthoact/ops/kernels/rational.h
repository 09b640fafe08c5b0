// Rational (Pade) activation with the "safe" denominators of PAU's rational-activations:
//   F = P(x) / Q(x),  P = sum_{i=0..m} a_i x^i,
//   version A: Q = 1 + sum_{j=1..n} |b_j x^j|        version B: Q = 1 + |S|, S = sum_{j=1..n} b_j x^j
// Packed row: [a_0..a_m, b_1..b_n] (P = m + 1 + n); the kernels specialise on m, n is P - m - 1.
//   dF/da_i = x^i / Q
//   dF/db_j = -F/Q * dQ/db_j,   A: dQ/db_j = sgn(b_j x^j) x^j     B: dQ/db_j = sgn(S) x^j
//   F' = (P' - F Q') / Q,       A: Q' = sum_j sgn(b_j x^j) j b_j x^(j-1)     B: Q' = vsgn(S) S'
// (sgn(0) = 0, as the reference's abs). Q >= 1, so there is no pole (1/Q by vrecip); +-inf inputs are NaN.
// For the linear extension outside a domain (x a domain end), with Qb_j = dQ/db_j and
// Q'b_j = dQ'/db_j (A: sgn(b_j x^j) j x^(j-1), B: sgn(S) j x^(j-1)):
//   dF'/da_i = (i x^(i-1) - x^i Q'/Q) / Q        dF'/db_j = -(Qb_j (P' - 2 F Q') / Q + F Q'b_j) / Q
#pragma once
#include "common.h"

template <typename T, int N, int VERSION> struct RationalF {
    typedef typename VT<T>::V V;
    static constexpr int P = MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;

    // The kernels specialise on the numerator degree N; the common m/(m-1) shapes (PAU's and KAT's
    // 5/4) also get the denominator degree at compile time, so every loop unrolls.
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int m_rt, int p, T aux) {
        if (N > 1 && p == 2 * N) return fwd_impl<(N > 1 ? N - 1 : 1)>(x, a, pos, m_rt, p);
        return fwd_impl<0>(x, a, pos, m_rt, p);
    }
    template <bool EXT, class L> static inline V bwd(V x, V g, L& a, i64 pos, int m_rt, int p, T aux, V t) {
        if (N > 1 && p == 2 * N) return bwd_impl<(N > 1 ? N - 1 : 1), EXT>(x, g, a, pos, m_rt, p, t);
        return bwd_impl<0, EXT>(x, g, a, pos, m_rt, p, t);
    }
    template <class L> static inline V fwd_d(V x, const L& a, i64 pos, int m_rt, int p, T aux, V& d) {
        V num, dnum, q, dq, s;
        if (N > 1 && p == 2 * N)
            terms<(N > 1 ? N - 1 : 1)>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        else
            terms<0>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        const V inv = vrecip(q), f = num * inv;
        d = (dnum - f * dq) * inv;
        return f;
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
        return num * vrecip(T(1) + (VERSION == 0 ? den : vabs(den)));
    }

    // P, P', Q, Q' and (version B) the sign of S at x.
    template <int D, class L>
    static inline void terms(V x, const L& a, i64 pos, int m_rt, int p, V& num, V& dnum, V& q, V& dq, V& s) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1, top = std::max(m, n);
        V den = V{}, dden = V{}, xp = splat<V>(T(1));
        num = a.param(0, pos);
        dnum = V{};
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
        s = VERSION == 0 ? V{} : vsgn(den);  // version B: sign of S
        q = T(1) + (VERSION == 0 ? den : vabs(den));
        dq = VERSION == 0 ? dden : s * dden;
    }

    template <int D, bool EXT, class L> static inline V bwd_impl(V x, V g, L& a, i64 pos, int m_rt, int p, V t) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1, top = std::max(m, n);
        V num, dnum, q, dq, s;
        terms<D>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        const V inv = vrecip(q), f = num * inv;
        const V gi = g * inv, gfi = gi * f;
        const V fprime = (dnum - f * dq) * inv;
        // with EXT: g t dF'/dtheta, from the common factors of both parameter kinds
        const V gti = EXT ? g * t * inv : V{}, dq_q = EXT ? dq * inv : V{};
        const V bfactor = EXT ? (dnum - T(2) * f * dq) * inv : V{};
        V xp = splat<V>(T(1)), prev = V{};
#pragma GCC unroll 16
        for (int j = 0; j <= top; ++j) {
            if (j > 0) {
                prev = xp;
                xp *= x;
            }
            if (j <= m) a.acc(j, pos, EXT ? gi * xp + gti * (T(j) * prev - xp * dq_q) : gi * xp);
            if (j >= 1 && j <= n) {
                const V sj = VERSION == 0 ? vsgn(a.param(m + j, pos) * xp) : s;
                const V dqdb = sj * xp;
                a.acc(m + j, pos, EXT ? -(gfi * dqdb) - gti * (dqdb * bfactor + f * sj * T(j) * prev) : -(gfi * dqdb));
            }
        }
        return g * fprime;
    }
    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T*, i64, int, int) { return T(0); }
};
template <typename T, int N> using RationalAF = RationalF<T, N, 0>;
template <typename T, int N> using RationalBF = RationalF<T, N, 1>;
