// Tropical rational: F = max_k (p_k x + a_k) - max_k (q_k x + b_k).
// Packed row: [p_0..p_n, a_0..a_n, q_0..q_n, b_0..b_n] (P = 4(n + 1)).
//   at the numerator's arg-max i: dF/dp_i = x, dF/da_i = 1; at the denominator's j: dF/dq_j = -x,
//   dF/db_j = -1;  F'(x) = p_i - q_j  (first arg-max on ties; +-inf inputs count as NaN).
#pragma once
#include <limits>

#include "common.h"
#include "envelope.h"

// The float32 backward of the runs layout takes each max from its upper envelope, prepared per group on
// the host: the pieces of x's axis on which one line is the first arg-max, in increasing x, and the
// float where each piece starts. Per element and max that is a comparison per piece boundary, a lookup
// of the piece's slope and offset and two masked sums per piece, instead of an FMA, a comparison, two
// blends and two masked sums per line; a line never on the envelope costs nothing (the benchmark's
// module, the paper's normal init, has 3 and 4 pieces of 6 lines). The sums are per piece (a mask per
// piece from two adjacent comparisons) and finish_backward moves them to the pieces' lines. The host's
// comparisons are exact (envelope.h), so each element's gradient goes to the first arg-max of the
// exact values s_k x + o_k, as the float64 reference's does up to its own rounding; the per-line loop
// compares float32-rounded values and may pick another line within a rounding of a crossing.
// Kernel-only A/B on AMD Zen 3 (AVX2), TR-5, 4M float32, 2 threads: backward 0.52-0.65x with the
// benchmark's module, 0.73-0.82x with every line on its envelope (tangents of x^2). The forward keeps
// the per-line loop (without the arg-max it is an FMA and a max per line; the envelope's comparisons
// and lookups measured 1.07-1.27x), and so do the rows layout (see aux), float64 kernels, degrees
// compiled without their own code (N = 0), and calls whose parameters fail exact_differences (a
// non-finite one, or magnitudes 2^28 apart within one max's slopes or offsets): aux says which, 1
// envelope, 0 per line.
template <typename T, int N> struct TropicalRationalF {
    static constexpr int P = N > 0 ? 4 * (N + 1) : MAX_P;
    static constexpr bool HAS_DERIVATIVE = false;  // grows linearly already: no domain
    static constexpr int M = N > 0 ? N : OA_MAX_DEGREE;
    // Two registers per backward step (simd.h): kernel-only A/B on AMD Zen 3 (AVX2), TR-5, 4M float32,
    // the per-line loop (1 thread): backward 0.87x; the envelope's (2 threads, every line on it): 0.95x;
    // the forward gains nothing (1.00x).
    static constexpr int PACK = 2;
    static constexpr int pack_forward(int) { return 1; }
    static constexpr int pack_backward(int) { return PACK; }
    // Whether this instantiation can take the envelope (float32, a compiled degree), and whether a call does.
    static constexpr bool ENVELOPE = N > 0 && std::is_same<T, float>::value;
    static OA_INLINE bool by_envelope(T aux) { return ENVELOPE && aux > T(0.5); }

    // Extra prepared columns (from own(n) + 1), per max (numerator first): the piece count, the n
    // starts of pieces 1..n (+inf past the last piece: no finite x reaches them), the n + 1 pieces'
    // slopes and offsets (tables that permute reads as one vector) and lines (for finish_backward;
    // -1 past the last piece); W columns of padding after them.
    // The per-line loop's rows (the forward's, and the backward's without the envelope) have the
    // padding alone: its slope table reads past the row's own columns at degree 1 or 2.
    static constexpr int PX = 2 * (4 * M + 4) + VT<T>::W;
    static int extra(int n, bool forward, T aux) {
        return (forward || !by_envelope(aux) ? 0 : 2 * (4 * n + 4)) + VT<T>::W;
    }
    static constexpr OA_INLINE int own(int n) { return 4 * (n + 1); }
    static constexpr OA_INLINE int envelope_columns(int n, int h) { return own(n) + 1 + h * (4 * n + 4); }

    // ---- the upper envelope (host: envelope.h) --------------------------------------------------
    typedef UpperEnvelope<T, M> Envelope;

    // Per max h (0: numerator, 1: denominator), its envelope in the extra columns (see above; were it
    // to have more pieces than lines, which aux rules out, the columns would describe line 0 alone).
    static void prepare_envelope(const T* raw, T* out, int n, int h) {
        const int m = n + 1, c0 = envelope_columns(n, h);
        int line[M + 3];
        T start[M + 3];
        const int count = Envelope::pieces(raw + 2 * h * m, raw + (2 * h + 1) * m, n, line, start);
        const int last = std::max(count, 1) - 1;
        out[c0] = T(std::max(count, 1));
        for (int i = 1; i <= n; ++i) out[c0 + i] = i < count ? start[i] : T(INFINITY);
        for (int i = 0; i <= n; ++i) {
            const int k = count ? line[std::min(i, last)] : 0;
            out[c0 + n + 1 + i] = raw[2 * h * m + k];
            out[c0 + 2 * n + 2 + i] = raw[(2 * h + 1) * m + k];
            out[c0 + 3 * n + 3 + i] = i <= last ? T(k) : T(-1);
        }
    }

    // ---- the per-line loop (float64, non-finite parameters) --------------------------------------
    // max_k (s_k x + o_k), its first arg-max and the slope there. With one group's parameters in every
    // lane (runs layout) and the n + 1 slopes fitting one vector, the slope is one permute of them by
    // the arg-max, not a blend per piece.
    template <class L> static constexpr bool lookup() { return N > 0 && N + 1 <= VT<T>::W && L::UNIFORM; }
    template <class V, class L>
    static OA_INLINE void max_affine(V x, const L& a, i64 pos, int n, int s0, int o0, V& best, V& slope, Mask<V>& arg) {
        typedef Mask<V> I;
        slope = a.param(s0, pos);
        best = slope * x + a.param(o0, pos);
        arg = I{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V s = a.param(s0 + k, pos);
            const V v = s * x + a.param(o0 + k, pos);
            const auto better = v > best;
            best = select(better, v, best);
            if (!lookup<L>()) slope = select(better, s, slope);
            arg = select(better, splat<I>(k), arg);
        }
        if constexpr (lookup<L>()) slope = permute(a.lanes(s0), arg);
    }
    // The slope sums (columns s0..s0+n) and offset sums (the n + 1 after them) of one max: v x and v on
    // the lanes whose arg-max is k.
    template <class V, class L> static OA_INLINE void arg_sums(L& a, i64 pos, int n, int s0, Mask<V> arg, V v, V vx) {
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) {
            const auto on = arg == k;
            a.acc_if(s0 + k, pos, on, vx);
            a.acc_if(s0 + n + 1 + k, pos, on, v);
        }
    }

    // ---- the envelope (float32) ------------------------------------------------------------------
    // Max h's value at x and its slope there, and g x and g summed per piece (piece i's in the
    // max's columns i and n + 1 + i: finish_backward moves them to the pieces' lines), in the runs
    // layout. The loop stops at the group's piece count (a branch per piece, the same for a whole run).
    template <class V, class L>
    static OA_INLINE V envelope_max(V x, L& a, i64 pos, int n, int h, V& slope, V g, V gx) {
        static_assert(L::UNIFORM, "the envelope is the runs layout's (aux)");
        typedef Mask<V> I;
        const int c0 = envelope_columns(n, h), s0 = 2 * h * (n + 1);
        const int last = int(a.param(c0, pos)[0]) - 1;  // the last piece
        I idx{}, from = ~I{};  // the piece's index; the lanes at or past the current piece's start
        V offset{};
        if constexpr (!lookup<L>()) slope = a.param(c0 + n + 1, pos), offset = a.param(c0 + 2 * n + 2, pos);
#pragma GCC unroll 16
        for (int i = 0; i <= n; ++i) {
            if (i > last) break;
            const I next = i < n ? I(x >= V(a.param(c0 + 1 + i, pos))) : I{};
            if (i < n) {
                idx -= next;
                if constexpr (!lookup<L>()) {
                    slope = select(next, V(a.param(c0 + n + 2 + i, pos)), slope);
                    offset = select(next, V(a.param(c0 + 2 * n + 3 + i, pos)), offset);
                }
            }
            const I on = from ^ next;
            a.acc_if(s0 + i, pos, on, gx);
            a.acc_if(s0 + n + 1 + i, pos, on, g);
            from = next;
        }
        if constexpr (lookup<L>()) {
            slope = permute(a.lanes(c0 + n + 1), idx);
            offset = permute(a.lanes(c0 + 2 * n + 2), idx);
        }
        return slope * x + offset;
    }

    // The forward takes the per-line loop whatever aux says (see the top).
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, s;
        Mask<V> i;
        max_affine(x, a, pos, n, 0, m, num, s, i);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, s, i);
        return num - den;
    }
    // The backward of one vector, in one pass: both arg-maxes and the 4(n + 1) masked sums (x g and g
    // at the numerator's arg-max, -x g and -g at the denominator's; the envelope's sums are +x g and +g
    // for both, finish_backward negates the denominator's). Splitting the numerator's and the
    // denominator's sums into two sweeps per chunk (12 accumulators live, not 24) was 5-25% slower on
    // the AMD EPYC (Zen 5) of 2026-12-04 (kernel-only A/B, 4M float32, 1 and 2 threads, by the
    // machine's state), though an Intel Xeon had preferred it: one pass is the simpler code.
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V) {
        V y;
        return backward<false>(x, g, a, pos, n_rt, aux, y);
    }
    // The backward that writes the value too (kernels.cpp): the difference of the maxima it finds anyway.
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V& y) {
        return backward<true>(x, g, a, pos, n_rt, aux, y);
    }
    template <bool VALUE, class V, class L> static OA_INLINE V backward(V x, V g, L& a, i64 pos, int n_rt, T aux, V& y) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, num_slope, den_slope;
        const V gx = g * x;
        bool done = false;
        if constexpr (ENVELOPE && L::UNIFORM)
            if (by_envelope(aux)) {
                num = envelope_max(x, a, pos, n, 0, num_slope, g, gx);
                den = envelope_max(x, a, pos, n, 1, den_slope, g, gx);
                done = true;
            }
        if (!done) {
            Mask<V> arg;
            max_affine(x, a, pos, n, 0, m, num, num_slope, arg);
            arg_sums(a, pos, n, 0, arg, g, gx);
            max_affine(x, a, pos, n, 2 * m, 3 * m, den, den_slope, arg);
            const V ng = -g;
            arg_sums(a, pos, n, 2 * m, arg, ng, ng * x);
        }
        if constexpr (VALUE) y = num - den;
        return g * (num_slope - den_slope);
    }
    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        if (by_envelope(aux)) prepare_envelope(raw, out, n, 0), prepare_envelope(raw, out, n, 1);
    }
    // The envelope's per-piece sums to the pieces' lines (from the prepared row; the denominator's
    // negated); a group whose inputs had a NaN (every sum NaN) keeps them all.
    static void finish_backward(const T*, const T* prepared, double* grad, int n, int, T aux) {
        if (!by_envelope(aux)) return;
        const int m = n + 1;
        bool all_nan = true;
        for (int k = 0; k < 4 * m; ++k) all_nan = all_nan && std::isnan(grad[k]);
        if (all_nan) return;
        for (int h = 0; h < 2; ++h) {
            const T* line = prepared + envelope_columns(n, h) + 3 * n + 3;
            double* sums = grad + 2 * h * m;
            double piece[2 * (M + 1)];
            std::copy(sums, sums + 2 * m, piece);
            std::fill(sums, sums + 2 * m, 0.0);
            const double sign = h ? -1.0 : 1.0;
            for (int i = 0; i <= n && line[i] >= T(0); ++i) {
                sums[int(line[i])] += sign * piece[i];
                sums[m + int(line[i])] += sign * piece[m + i];
            }
        }
    }
    // 1 (the envelope) for float32 kernels of a compiled degree in the runs layout whose every max has
    // exact differences (exact_differences, in every group), else 0 (the per-line loop). The rows
    // layout (many short runs: per-position parameters) keeps the per-line loop: there each element
    // would compare with every piece start anyway, and the host's envelopes of many groups and their
    // wider rows measured 1.7-4x the per-line backward (4096 groups of degree 5 and 10, 16 rows).
    static T aux(const T* params, i64 G, int P_, int n, bool runs) {
        if (!ENVELOPE || !runs) return T(0);
        for (i64 g = 0; g < G; ++g)
            for (int set = 0; set < 4; ++set)
                if (!Envelope::exact_differences(params + g * P_ + set * (n + 1), n)) return T(0);
        return T(1);
    }
};
