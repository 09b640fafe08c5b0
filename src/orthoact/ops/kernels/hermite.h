// Hermite: F = sum_k a_k h_k(x), h_{k+1} = (x h_k - h_{k-1}) / (k+1).
// Packed row: [a_0 .. a_n] (P = n + 1).
//   dF/da_k = h_k(x)          F'(x) = sum_{k>=1} a_k h_{k-1}(x)          dF'/da_k = h_{k-1}(x)
#pragma once
#include "common.h"

template <typename T, int N> struct HermiteF {
    static constexpr int P = N > 0 ? N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;
    // Forward evaluates the series by Horner's rule on its monomial coefficients (prepared per
    // group in float64 by the exact recurrence on coefficient vectors): n FMAs per element.
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt;
        V y = a.param(n, pos);
#pragma GCC unroll 16
        for (int k = n - 1; k >= 0; --k) y = y * x + a.param(k, pos);
        return y;
    }
    // F and F' together by Horner's rule on the monomial coefficients (the linear extension).
    template <class V, class L> static OA_INLINE V fwd_d(V x, const L& a, i64 pos, int n_rt, int, T, V& d) {
        const int n = N > 0 ? N : n_rt;
        V y = a.param(n, pos);
        d = V{};
#pragma GCC unroll 16
        for (int k = n - 1; k >= 0; --k) {
            d = d * x + y;
            y = y * x + a.param(k, pos);
        }
        return y;
    }
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T, V t) {
        return backward<EXT, false>(x, g, a, pos, n_rt, t, static_cast<V*>(nullptr));
    }
    // The backward that writes the value too (kernels.cpp): F = sum_k a_k h_k from the basis it
    // computes anyway, one FMA per term (the backward's row holds the a_k themselves).
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T, V& y) {
        return backward<false, true>(x, g, a, pos, n_rt, V{}, &y);
    }
    template <bool EXT, bool VALUE, class V, class L>
    static OA_INLINE V backward(V x, V g, L& a, i64 pos, int n_rt, V t, V* y) {
        const int n = N > 0 ? N : n_rt;
        V hp = splat<V>(T(1)), hc = x, d = a.param(1, pos), value = V{};
        if constexpr (VALUE) value = a.param(1, pos) * x + a.param(0, pos);
        a.acc(0, pos, g);
        a.acc(1, pos, EXT ? g * (x + t) : g * x);
#pragma GCC unroll 16
        for (int k = 1; k < n; ++k) {
            const V hn = (x * hc - hp) * (T(1) / T(k + 1));
            d += a.param(k + 1, pos) * hc;  // h_{k+1}' = h_k
            if constexpr (VALUE) value += a.param(k + 1, pos) * hn;
            a.acc(k + 1, pos, EXT ? g * (hn + t * hc) : g * hn);
            hp = hc;
            hc = hn;
        }
        if constexpr (VALUE) *y = value;
        return g * d;
    }
    static void prepare_backward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_forward(const T* raw, T* out, int n, int, T) {
        std::vector<double> prev(n + 1, 0.0), cur(n + 1, 0.0), next(n + 1, 0.0), mono(n + 1, 0.0);
        prev[0] = 1.0;
        mono[0] += raw[0];
        if (n >= 1) {
            cur[1] = 1.0;
            mono[1] += raw[1];
        }
        for (int k = 1; k < n; ++k) {
            for (int j = 0; j <= n; ++j) next[j] = ((j > 0 ? cur[j - 1] : 0.0) - prev[j]) / (k + 1);
            for (int j = 0; j <= n; ++j) mono[j] += raw[k + 1] * next[j];
            std::swap(prev, cur);
            std::swap(cur, next);
        }
        for (int j = 0; j <= n; ++j) out[j] = T(mono[j]);
    }
    static T aux(const T*, i64, int, int, bool) { return T(0); }
};
