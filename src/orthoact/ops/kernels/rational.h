// Rational (Pade) activation with the "safe" denominators of PAU's rational-activations:
//   F = P(x) / Q(x),  P = sum_{i=0..m} a_i x^i,
//   version A: Q = 1 + sum_{j=1..n} |b_j x^j|        version B: Q = 1 + |S|, S = sum_{j=1..n} b_j x^j
// Packed row: [a_0..a_m, b_1..b_n] (P = m + 1 + n); the kernels specialise on m, n is P - m - 1.
//   dF/da_i = x^i / Q
//   dF/db_j = -F/Q * dQ/db_j,   A: dQ/db_j = sgn(b_j x^j) x^j     B: dQ/db_j = sgn(S) x^j
//   F' = (P' - F Q') / Q,       A: Q' = sum_j sgn(b_j x^j) j b_j x^(j-1)     B: Q' = vsgn(S) S'
// (sgn(0) = 0, as the reference's abs). Q >= 1, so there is no pole (1/Q by vrecip); +-inf inputs are NaN.
// Version A is a polynomial in |x| with coefficients |b_j|: Q = 1 + sum_j |b_j| |x|^j,
// Q' = sgn(x) sum_j j |b_j| |x|^(j-1), dQ/db_j = sgn(b_j) |x|^j: both prepared rows hold |b_j|, and the
// backward accumulates the b_j sums without sgn(b_j), which finish_backward applies per group (no
// sign per term and element).
// For the linear extension outside a domain (x a domain end), with Qb_j = dQ/db_j and
// Q'b_j = dQ'/db_j (A: sgn(b_j) sgn(x) j |x|^(j-1), B: sgn(S) j x^(j-1)):
//   dF'/da_i = (i x^(i-1) - x^i Q'/Q) / Q        dF'/db_j = -(Qb_j (P' - 2 F Q') / Q + F Q'b_j) / Q
#pragma once
#include "common.h"

template <typename T, int N, int VERSION> struct RationalF {
    static constexpr int P = MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;

    // The kernels specialise on the numerator degree N; the common m/(m-1) shapes (PAU's and KAT's
    // 5/4) also get the denominator degree at compile time, so every loop unrolls.
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int m_rt, int p, T aux) {
        if (N > 1 && p == 2 * N) return fwd_impl<(N > 1 ? N - 1 : 1)>(x, a, pos, m_rt, p);
        return fwd_impl<0>(x, a, pos, m_rt, p);
    }
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int m_rt, int p, T aux, V t) {
        if (N > 1 && p == 2 * N) return bwd_impl<(N > 1 ? N - 1 : 1), EXT>(x, g, a, pos, m_rt, p, t);
        return bwd_impl<0, EXT>(x, g, a, pos, m_rt, p, t);
    }
    // The backward that writes the value too (kernels.cpp): F = P / Q, which it computes anyway.
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int m_rt, int p, T, V& y) {
        if (N > 1 && p == 2 * N) return bwd_impl<(N > 1 ? N - 1 : 1), false, true>(x, g, a, pos, m_rt, p, V{}, &y);
        return bwd_impl<0, false, true>(x, g, a, pos, m_rt, p, V{}, &y);
    }
    template <class V, class L> static OA_INLINE V fwd_d(V x, const L& a, i64 pos, int m_rt, int p, T aux, V& d) {
        V num, dnum, q, dq, s;
        if (N > 1 && p == 2 * N)
            terms<(N > 1 ? N - 1 : 1)>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        else
            terms<0>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        const V inv = vrecip(q), f = num * inv;
        d = (dnum - f * dq) * inv;
        return f;
    }
    // P and Q by Horner's rule: one FMA per coefficient (version A in |x| on the prepared |b_j|).
    template <int D, class V, class L> static OA_INLINE V fwd_impl(V x, const L& a, i64 pos, int m_rt, int p) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1;
        V num = a.param(m, pos);
#pragma GCC unroll 16
        for (int i = m - 1; i >= 0; --i) num = num * x + a.param(i, pos);
        const V u = VERSION == 0 ? vabs(x) : x;
        V den = a.param(m + n, pos);
#pragma GCC unroll 16
        for (int j = n - 1; j >= 1; --j) den = den * u + a.param(m + j, pos);
        den *= u;  // sum_{j>=1}: A: sum |b_j| |x|^j >= 0;  B: S
        return num * vrecip(T(1) + (VERSION == 0 ? den : vabs(den)));
    }

    // P, P', Q, Q' and (version B) the sign of S at x, by Horner's rule (a value and its derivative:
    // two FMAs per coefficient): P(x) and P'(x); S = u T(u) and S' = T + u T' with
    // T = b_1 + b_2 u + ... + b_n u^(n-1) in the denominator's variable u (A: |x|, on the prepared |b_j|).
    template <int D, class V, class L>
    static OA_INLINE void terms(V x, const L& a, i64 pos, int m_rt, int p, V& num, V& dnum, V& q, V& dq, V& s) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1;
        const V u = VERSION == 0 ? vabs(x) : x;  // the denominator's variable
        num = a.param(m, pos);
        dnum = V{};
#pragma GCC unroll 16
        for (int i = m - 1; i >= 0; --i) {
            dnum = dnum * x + num;
            num = num * x + a.param(i, pos);
        }
        V t = a.param(m + n, pos), dt = V{};
#pragma GCC unroll 16
        for (int j = n - 1; j >= 1; --j) {
            dt = dt * u + t;
            t = t * u + a.param(m + j, pos);
        }
        const V den = u * t, dden = t + u * dt;  // S and dS/du
        s = VERSION == 0 ? vsgn(x) : vsgn(den);  // A: sgn(x) (Q' = sgn(x) dden);  B: sgn(S)
        q = T(1) + (VERSION == 0 ? den : vabs(den));
        dq = s * dden;
    }

    template <int D, bool EXT, bool VALUE = false, class V, class L>
    static OA_INLINE V bwd_impl(V x, V g, L& a, i64 pos, int m_rt, int p, V t, V* y = nullptr) {
        const int m = N > 0 ? N : m_rt, n = D > 0 ? D : p - m - 1, top = std::max(m, n);
        V num, dnum, q, dq, s;
        terms<D>(x, a, pos, m_rt, p, num, dnum, q, dq, s);
        const V inv = vrecip(q), f = num * inv;
        if constexpr (VALUE) *y = f;
        const V gi = g * inv, gfi = gi * f;
        const V fprime = (dnum - f * dq) * inv;
        // the b_j sums: -g F/Q dQ/db_j = nb * u^j with u = |x| (A, sgn(b_j) applied at the end) or x (B)
        const V nb = VERSION == 0 ? -gfi : -(gfi * s);
        // with EXT: g t dF'/dtheta, from the common factors of both parameter kinds
        const V gti = EXT ? g * t * inv : V{}, dq_q = EXT ? dq * inv : V{};
        const V bfactor = EXT ? (dnum - T(2) * f * dq) * inv : V{};
        const V u = VERSION == 0 ? vabs(x) : x;
        V xp = splat<V>(T(1)), prev = V{}, up = xp, uprev = V{};
#pragma GCC unroll 16
        for (int j = 0; j <= top; ++j) {
            if (j > 0) {
                prev = xp;
                uprev = up;
                xp *= x;
                up = VERSION == 0 ? up * u : xp;
            }
            if (j <= m) a.acc(j, pos, EXT ? gi * xp + gti * (T(j) * prev - xp * dq_q) : gi * xp);
            if (j >= 1 && j <= n) {
                // A: Qb_j / sgn(b_j) = |x|^j, Q'b_j / sgn(b_j) = sgn(x) j |x|^(j-1);  B: sgn(S) x^j, sgn(S) j x^(j-1)
                const V qb = VERSION == 0 ? up : s * xp, dqb = s * (T(j) * uprev);
                a.acc(m + j, pos, EXT ? -(gfi * qb) - gti * (qb * bfactor + f * dqb) : nb * up);
            }
        }
        return g * fprime;
    }
    static void prepare_forward(const T* raw, T* out, int n, int p, T aux) { prepare(raw, out, n, p); }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) { prepare(raw, out, n, p); }
    static void prepare(const T* raw, T* out, int m, int p) {  // version A: |b_j|
        std::memcpy(out, raw, sizeof(T) * p);
        if (VERSION == 0)
            for (int k = m + 1; k < p; ++k) out[k] = std::fabs(raw[k]);
    }
    // Version A: the b_j sums times sgn(b_j) (NaN for a NaN b_j, 0 for b_j = 0).
    static void finish_backward(const T* raw, const T*, double* grad, int m, int p, T) {
        if (VERSION != 0) return;
        for (int k = m + 1; k < p; ++k) {
            const double b = raw[k];
            grad[k] *= b > 0 ? 1.0 : b < 0 ? -1.0 : b == 0 ? 0.0 : double(NAN);
        }
    }
    static T aux(const T*, i64, int, int, bool) { return T(0); }
};
template <typename T, int N> using RationalAF = RationalF<T, N, 0>;
template <typename T, int N> using RationalBF = RationalF<T, N, 1>;
