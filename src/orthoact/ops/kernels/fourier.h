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
// operations per element. Harmonic rows keep the c_k and phi_k sums unrotated (below) and skip the
// frequencies' sums when the layout says their gradient is not wanted (learn_frequencies=False; other
// rows compute them anyway: a test per harmonic split their straight-line code, 1.1x slower).
#pragma once
#include "common.h"

// Harmonic frequencies (w_k = k w_1 in every group: Fourier(learn_frequencies=False) and the paper's
// init) take one sin/cos per element instead of one per harmonic: with theta = w_1 x and
// z = e^{i theta}, F is the real part of a polynomial in z,
//   F = b + Re sum_k (A_k - i B_k) z^k,   F' = Re sum_k w_k (B_k + i A_k) z^k,
// A_k = a_k cos phi_k, B_k = a_k sin phi_k (a_k = c_k/k!) prepared per group on the host, so the
// forward is Horner's rule in z: four FMAs per harmonic, an error that grows as n (|z| = 1). The
// backward needs every power: p_k = g z^k = p_{k-1} z gives the unrotated sums G_c = sum g cos k theta
// and G_s = sum g sin k theta as plain adds of p_k, and g F' = sum_k (e_k Re p_k + f_k Im p_k) without
// the final product by g (e_k = w_k B_k, f_k = -w_k A_k); finish_backward rotates G_c, G_s by phi_k:
//   S_c = cos phi G_c + sin phi G_s,   S_phi = cos phi G_s - sin phi G_c.
// (The recurrence's error grows as k, as the powers' do; the Chebyshev recurrence's, two FMAs per
// harmonic, grows as k^2.) `aux` says which rows: the bound B >= 0 for any frequencies, -(B + 2) for
// harmonic ones, -1 for libm always.
template <typename T, int N> struct FourierF {
    static constexpr int P = N > 0 ? 3 * N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = true;
    // Registers per step (simd.h): two for harmonic rows, whose recurrences are long chains of
    // dependent complex products; one for any frequencies, bound by the FMA units' throughput
    // (kernel-only A/B on AMD Zen 3, AVX2, Fourier-5, 1 thread, 4M float32, two registers against
    // one: harmonic forward 0.82x, backward 0.76x; any frequencies 1.01x and 1.19x).
    static constexpr int PACK = 2;
    static constexpr int pack_forward(int mode) { return mode == ANY ? 1 : PACK; }
    static constexpr int pack_backward(int mode) { return mode == ANY ? 1 : PACK; }
    static constexpr int FREQUENCIES = 2;  // the frequencies' place among the parameter tensors (b, c, w, phi)
    // Arguments |w x - phi| up to 8192 take the fast sin/cos (sincospi_v would reach further, but a
    // float32 argument's own rounding grows with it; libm's float64 arguments stay exact): the bound
    // is the largest |x| for which every argument stays below that; a vector with any larger x is
    // computed lane by lane with libm in float64, out of line. Clean chunks (kernels.cpp) have none.
    static OA_INLINE bool harmonic(T aux) { return aux < T(-1.5); }
    // Clean chunks (kernels.cpp: every |x| within the bound, finite) take the fast sums alone, the
    // rows' kind chosen once per call: mode ANY (any frequencies), HARMONIC, or FIXED (harmonic rows
    // whose frequencies want no gradient: a per-element choice between the two harmonic loops had
    // GCC compute every power first and spill them). A forward takes ANY or HARMONIC; a backward
    // with the value ANY or FIXED (value_in_backward).
    static constexpr int ANY = 0, HARMONIC = 1, FIXED = 2, FAST_MODES = 3;
    static int fast_mode(T aux, unsigned skip) {
        return !harmonic(aux) ? ANY : skip & (1u << FREQUENCIES) ? FIXED : HARMONIC;
    }
    static constexpr bool forward_mode(int mode) { return mode != FIXED; }
    static constexpr bool value_mode(int mode) { return mode != HARMONIC; }
    static T fast_bound(T aux) { return bound_of(aux); }
    static constexpr int M = N > 0 ? N : OA_MAX_DEGREE;  // the most harmonics a row has
    // Extra prepared columns (from p + 1: 2n + 1 in the forward's rows, 4n + 2 in the backward's). Any frequencies, in float32: the fast path's argument in
    // half-turns, u_k = w'_k x - phi'_k with w'_k = fl(w_k / pi) and phi'_k = fl(phi_k / pi), so that
    // the reduction is exact (sincospi_v): three adds instead of three FMAs per sin/cos (kernel-only
    // A/B, Fourier-5, 2 threads, 4M float32: forward 0.82x, backward 0.92x). Rounding w'_k and phi'_k
    // adds at most eps/2 (|w_k x| + |phi_k|) to the argument's own rounding eps/2 |z_k| (random
    // parameters, |x| ~ 4: max error of F 8.9e-7 of max |F| instead of 8.2e-7, of F' 6.2e-7 instead of
    // 4.5e-7). The libm lanes keep w_k and phi_k (their float64 arguments stay exact), and the factors
    // w_k of F' and of the linear extension's terms are the raw ones. Harmonic rows hold F''s
    // coefficients there (forward: w_k B_k, w_k A_k; backward: e_k, f_k). The backward's rows then
    // hold what its value needs (bwd_value): a_k = c_k/k! (any frequencies) or A_k and B_k
    // (harmonic), and b. Last in both, harmonic rows' w'_1 = fl(w_1 / pi): their one angle in
    // half-turns as well (float32: sincospi_v, the same bound on the rounding; kernel-only, 1 thread,
    // fixed-frequency Fourier-5: forward 0.93x, backward 0.95x of the two FMA steps of sincos_v).
    static constexpr bool HALF_TURNS = std::is_same<T, float>::value;
    static constexpr int PX = 4 * M + 2;
    static int extra(int n, bool forward, T) { return forward ? 2 * n + 1 : 4 * n + 2; }
    static constexpr OA_INLINE int w1pi(int n, bool forward) { return own(n) + (forward ? 2 * n + 1 : 4 * n + 2); }
    // The row's own columns (p in common.h's terms): the extra ones are own(n) + 1 .. own(n) + extra(n), at
    // offsets known at compile time (kernels.cpp refuses a call whose p is not own(n)).
    static constexpr OA_INLINE int own(int n) { return 3 * n + 1; }
    static OA_INLINE T bound_of(T aux) { return harmonic(aux) ? -aux - T(2) : aux; }
    template <class V> static OA_INLINE bool safe(V x, T aux) { return !any_set(~(vabs(x) <= bound_of(aux))); }

    // cos k theta and sin k theta for k = 1..n from those of theta by angle addition,
    // (k theta) = (i theta) + (j theta) with j = k / 2, i = k - j: a product tree, ceil(log2 k) complex
    // multiplies deep (the linear extension's backward, which needs them one by one).
    template <class V> static OA_INLINE void harmonics(V c1, V s1, int n, V* C, V* S) {
        C[1] = c1, S[1] = s1;
#pragma GCC unroll 16
        for (int k = 2; k <= n; ++k) {
            const int j = k / 2, i = k - j;
            C[k] = C[i] * C[j] - S[i] * S[j];
            S[k] = S[i] * C[j] + C[i] * S[j];
        }
    }
    // Re sum_{k=1..n} (re_k + i im_k) z^k, z = c + i s, by Horner's rule (re_k, im_k in columns
    // re0 + k, im0 + k; im_k negated with NEG).
    template <bool NEG, class V, class L>
    static OA_INLINE V horner_re(V c, V s, const L& a, i64 pos, int n, int re0, int im0) {
        V pr = a.param(re0 + n, pos), pi = NEG ? -a.param(im0 + n, pos) : a.param(im0 + n, pos);
#pragma GCC unroll 16
        for (int k = n - 1; k >= 1; --k) {
            const V re = (c * pr + a.param(re0 + k, pos)) - s * pi;
            const V im = NEG ? (s * pr - a.param(im0 + k, pos)) + c * pi : (s * pr + a.param(im0 + k, pos)) + c * pi;
            pr = re, pi = im;
        }
        return c * pr - s * pi;
    }

    // Prepared forward row: any frequencies [b, a_k = c_k/k!, w_k, phi_k]; harmonic ones
    // [b, A_k, w_k, B_k] and F''s coefficients w_k B_k, w_k A_k in the extra columns.
    template <class V, class L> static OA_INLINE V forward_sums(V x, const L& a, i64 pos, int n, bool harm, V* d) {
        return harm ? harmonic_forward(x, a, pos, n, d) : learned_forward(x, a, pos, n, d);
    }
    // cos and sin of a harmonic row's angle theta = w_1 x, from the forward's or the backward's row
    // (float32: w'_1 x in half-turns; float64: w_1 x, libm).
    template <class V> struct Angle { V c, s; };
    template <bool FORWARD, class V, class L> static OA_INLINE Angle<V> angle_of(V x, const L& a, i64 pos, int n) {
        Angle<V> t;
        if constexpr (HALF_TURNS) sincospi_v<true>(x * V(a.param(w1pi(n, FORWARD), pos)), t.s, t.c);
        else sincos_v<true>(x * V(a.param(FORWARD ? n + 1 : 0, pos)), t.s, t.c);
        return t;
    }
    template <class V, class L> static OA_INLINE V harmonic_forward(V x, const L& a, i64 pos, int n, V* d) {
        return harmonic_forward_from(angle_of<true>(x, a, pos, n), a, pos, n, d);
    }
    template <class V, class L> static OA_INLINE V harmonic_forward_from(const Angle<V>& z, const L& a, i64 pos, int n, V* d) {
        if (d) *d = horner_re<false>(z.c, z.s, a, pos, n, own(n), own(n) + n);
        return a.param(0, pos) + horner_re<true>(z.c, z.s, a, pos, n, 0, 2 * n);
    }
    // Any frequencies, float32: harmonic k's argument in half-turns, reduced (reduce_pi).
    template <class V, class L> static OA_INLINE PiReduced<V> reduced_argument(V x, const L& a, i64 pos, int n, int k) {
        return reduce_pi(vfma(V(a.param(own(n) + k, pos)), x, V(-a.param(own(n) + n + k, pos))));
    }
    // Harmonic k + 1's reduced argument, computed before harmonic k's polynomials (in program order:
    // kept there by `ordered`), so that its chain starts while they run. The loops are latency-bound:
    // one harmonic's chain of dependent operations (argument, reduction, squares, polynomial, sums) is
    // long, and the out-of-order window holds few harmonics' operations at once. Kernel-only, AMD Zen 3,
    // Fourier-5, 4M float32: with the cosine's sign applied to its factor (sincospi_unsigned), forward
    // 0.92x and backward 0.91x of one harmonic at a time on one core (2 threads, kernel_ab.py: 0.91x
    // and 0.84x; the same values bit for bit); the reduction alone ahead, backward 0.93x; two harmonics
    // ahead, or f^2 too, spill (backward 1.0-1.1x); the next vector's first harmonic ahead
    // (for_vectors' first stage) adds nothing.
    template <class V, class L> static OA_INLINE void reduce_next(PiReduced<V>& next, V x, const L& a, i64 pos, int n, int k) {
        if (k >= n) return;
        next = reduced_argument(x, a, pos, n, k + 1);
        ordered(next.f);
        ordered(next.t);
    }
    // Any frequencies: one sin/cos per harmonic (single registers: pack_forward). (The cosine as
    // 1 - 2 sin^2(pi u / 2), with no sign to apply, measured 0.91x, but its error reaches 5.3e-7 near
    // cos = -1, where the sine's own rounding is amplified fourfold: not float32-accurate.)
    template <class V, class L> static OA_INLINE V learned_forward(V x, const L& a, i64 pos, int n, V* d) {
        V y = a.param(0, pos), dd = V{};
        PiReduced<V> next{};
        if constexpr (HALF_TURNS) next = reduced_argument(x, a, pos, n, 1);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V amp = a.param(k, pos), w = a.param(n + k, pos);
            V s, c;
            Mask<V> sign{};  // cos z_k = c with this sign (the value alone: sincospi_unsigned)
            if constexpr (HALF_TURNS) {
                const PiReduced<V> r = next;
                reduce_next(next, x, a, pos, n, k);
                if (d) sincospi_reduced<true>(r, s, c);
                else sign = sincospi_unsigned<false>(r, s, c);
            } else {
                const V z = vfma(w, x, V(-a.param(2 * n + k, pos)));
                if (d) sincos_v<true>(z, s, c);
                else sincos_v<false>(z, s, c);
            }
            y += flip(amp, sign) * c;
            if (d) dd -= amp * w * s;
            ordered(y);  // one harmonic at a time (simd.h)
        }
        if (d) *d = dd;
        return y;
    }
    // The same sums lane by lane in float64 (rounded once at the end); the harmonic row's A_k, B_k
    // take the unshifted angle w_k x.
    template <class V, class L>
    __attribute__((noinline, cold)) static V forward_libm(V x, const L& a, i64 pos, int n, bool harm, V* d) {
        V y, dd;
        for (int l = 0; l < lanes<V>; ++l) {
            double out = V(a.param(0, pos))[l], dout = 0.0;
            for (int k = 1; k <= n; ++k) {
                const double amp = V(a.param(k, pos))[l], w = V(a.param(n + k, pos))[l], phi = V(a.param(2 * n + k, pos))[l];
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
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T aux) {
        const int n = N > 0 ? N : n_rt;
        return safe(x, aux) ? forward_sums(x, a, pos, n, harmonic(aux), static_cast<V*>(nullptr))
                            : forward_libm(x, a, pos, n, harmonic(aux), static_cast<V*>(nullptr));
    }
    // F and F' (the linear extension).
    template <class V, class L> static OA_INLINE V fwd_d(V x, const L& a, i64 pos, int n_rt, int, T aux, V& d) {
        const int n = N > 0 ? N : n_rt;
        return safe(x, aux) ? forward_sums(x, a, pos, n, harmonic(aux), &d)
                            : forward_libm(x, a, pos, n, harmonic(aux), &d);
    }

    // The clean chunks' formulas in two stages (kernels.cpp, for_vectors): fast_first, what the
    // rest needs first (harmonic rows: the sine and cosine of their angle; nothing for any
    // frequencies, whose harmonics are independent chains already), then the rest from it.
    template <int MODE, bool FORWARD, class V, class L> static OA_INLINE Angle<V> fast_first(V x, const L& a, i64 pos, int n_rt, T) {
        if constexpr (MODE == ANY) return Angle<V>{};
        else return angle_of<FORWARD>(x, a, pos, N > 0 ? N : n_rt);
    }
    template <int MODE, class V, class L>
    static OA_INLINE V fwd_fast(const Angle<V>& z, V x, const L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt;
        if constexpr (MODE == ANY) return learned_forward(x, a, pos, n, static_cast<V*>(nullptr));
        else return harmonic_forward_from(z, a, pos, n, static_cast<V*>(nullptr));
    }

    // One harmonic's unscaled sums (see the top of the file) and its term of F', from sin z, cos z.
    // (gc: g with the sign of cos z_k where c is its absolute value, sincospi_unsigned; g otherwise.)
    template <bool EXT, class V, class L>
    static OA_INLINE void harmonic_grads(L& a, i64 pos, int n, int k, V x, V g, V gc, V gx, V t, V aw, V w,
                                         V s, V c, V& d) {
        d -= aw * s;
        if (EXT) {
            const V gs = g * s, gt = g * t, wc = w * c;
            a.acc(k, pos, g * c - gt * w * s);
            a.acc(n + k, pos, gs * x + gt * (s + x * wc));
            a.acc(2 * n + k, pos, gs + gt * wc);
        } else {  // one FMA each (gx = g x once per element)
            a.acc(k, pos, gc * c);
            a.acc(n + k, pos, gx * s);
            a.acc(2 * n + k, pos, g * s);
        }
    }
    // The linear extension's harmonic sums, from cos k theta = ck and sin k theta = sk: the cosine and
    // phase sums' terms are rotated back by -phi_k here (finish_backward rotates every row's).
    template <class V, class L>
    static OA_INLINE void harmonic_ext_sums(L& a, i64 pos, int n, int k, bool want_w, V x, V g, V t, V aw, V w, V cp,
                                            V sp, V ck, V sk, V& d) {
        const V s = sk * cp - ck * sp, c = ck * cp + sk * sp;  // sin z_k, cos z_k
        d -= aw * s;
        const V gt = g * t, wc = w * c;
        const V dc = g * c - gt * w * s, ds = g * s + gt * wc;
        a.acc(k, pos, cp * dc - sp * ds);
        if (want_w) a.acc(n + k, pos, g * x * s + gt * (s + x * wc));
        a.acc(2 * n + k, pos, sp * dc + cp * ds);
    }
    // (re + i im) z for z = c + i s.
    template <class V> static OA_INLINE void times_z(V& re, V& im, V c, V s) {
        const V r = re * c - im * s;
        im = re * s + im * c;
        re = r;
    }
    // g F'(x) and the harmonic rows' plain sums by the recurrence p_k = g z^k (see the top of the file).
    template <bool WANT_W, class V, class L> static OA_INLINE V harmonic_backward(V x, V g, L& a, i64 pos, int n) {
        return harmonic_backward_from<WANT_W>(angle_of<false>(x, a, pos, n), x, g, a, pos, n);
    }
    template <bool WANT_W, class V, class L>
    static OA_INLINE V harmonic_backward_from(const Angle<V>& z, V x, V g, L& a, i64 pos, int n) {
        const int e0 = own(n);  // e_k in column e0 + k, f_k in e0 + n + k
        const V c1 = z.c, s1 = z.s;
        V pr = g * c1, pi = g * s1, dx = V{};  // p_1 = g z
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            if (k > 1) times_z(pr, pi, c1, s1);  // p_k = p_{k-1} z
            a.acc(k, pos, pr);
            a.acc(2 * n + k, pos, pi);
            dx += a.param(e0 + k, pos) * pr + a.param(e0 + n + k, pos) * pi;
            if (WANT_W) a.acc(n + k, pos, x * (a.param(n + k, pos) * pi - a.param(2 * n + k, pos) * pr));
            ordered(dx);  // one harmonic at a time (simd.h; kernel-only, 1 thread, FIXED: 0.94x)
        }
        return dx;
    }
    // g F'(x) and the sums. Prepared backward row: any frequencies [-, aw_k = c_k/k! w_k, w_k, phi_k];
    // harmonic ones [w_1, aw_k, cos phi_k, sin phi_k] (w_k = fl(k w_1), as stored) and e_k, f_k in the
    // extra columns.
    template <bool EXT, bool FAST, class V, class L>
    static OA_INLINE V backward_sums(V x, V g, L& a, i64 pos, int n, bool harm, V t) {
        const bool want_w = !(a.skip & (1u << FREQUENCIES));
        if (harm && FAST && !EXT)
            return want_w ? harmonic_backward<true>(x, g, a, pos, n) : harmonic_backward<false>(x, g, a, pos, n);
        V d = V{};
        if (harm) {
            const V w1 = a.param(0, pos);
            V C[M + 1], S[M + 1];
            if (FAST) {
                const Angle<V> z = angle_of<false>(x, a, pos, n);
                harmonics(z.c, z.s, n, C, S);
            }
#pragma GCC unroll 16
            for (int k = 1; k <= n; ++k) {
                const V wk = T(k) * w1;
                if (!FAST) {
                    for (int l = 0; l < lanes<V>; ++l) {
                        const double z = double(wk[l]) * double(x[l]);
                        C[k][l] = T(std::cos(z));
                        S[k][l] = T(std::sin(z));
                    }
                }
                if (EXT) {
                    harmonic_ext_sums(a, pos, n, k, want_w, x, g, t, V(a.param(k, pos)), wk, V(a.param(n + k, pos)),
                                      V(a.param(2 * n + k, pos)), C[k], S[k], d);
                } else {  // the plain sums of the fast path above, from the powers
                    const V cp = a.param(n + k, pos), sp = a.param(2 * n + k, pos), s = S[k] * cp - C[k] * sp;
                    d -= a.param(k, pos) * s;
                    a.acc(k, pos, g * C[k]);
                    if (want_w) a.acc(n + k, pos, g * x * s);
                    a.acc(2 * n + k, pos, g * S[k]);
                }
            }
            return g * d;
        }
        return learned_backward<EXT, FAST>(x, g, a, pos, n, t);
    }
    // Any frequencies, every sum (single registers: pack_backward); VALUE: F(x) too, in y (one FMA per
    // harmonic on the cosines the sums use).
    // Where its time goes (degree 5, float32, one core of the AMD EPYC Zen 3, 2026-12-07). The loop is
    // latency-bound, not throughput-bound: each harmonic is a chain of ~40 cycles of dependent
    // operations (argument, reduction, f^2, polynomial, sums), and the core's out-of-order window
    // holds only a few harmonics' operations. Measured with vectors of independent chains of K
    // dependent FMAs: K = 8, 14, 20, 28 took 4.6, 9.6, 20.6, 26.8 cycles per vector (the FMA units'
    // rate alone: 4, 7, 10, 14). So time follows chain length times operations in flight more than the
    // operation count: the cosine and sine to fewer operations but a quadrant swap (more, independent
    // operations: 2 shifts, 8 logic ops) measured 1.00x; the sign by a byte shuffle instead of a shift,
    // 1.02x; harmonic by harmonic over a chunk with three sums in registers, 1.23x; two vectors a step
    // with each sum stored once, 1.16x. What shortened the chains: the next harmonic's reduction ahead
    // and the signs off their ends (reduce_next, sincospi_unsigned; 0.91x), then the cosine to degree 8
    // here (0.89x; 62-65 cycles per vector of 8 before, 50 after). Earlier variants (kernel-only, 1
    // thread, 4M, against the one-harmonic-at-a-time loop): without the sign's shift and xors (wrong
    // values) 0.90x, without the three sums 0.86x; two harmonics interleaved 1.06x; two registers a
    // step with the sums as FMA chains 1.06x (spills); Estrin's order for the sine 1.01x (0.98x with
    // the chains shortened, but 1.73e-7 from sin instead of 1.58e-7); -fschedule-insns 1.13x; clang
    // 1.21x. The core issues 2 FMAs, 2 vector loads and 1 vector store per cycle; adds, logic ops,
    // compares and roundings go beside the FMAs; a vector shift costs a sixth of a cycle more.
    template <bool EXT, bool FAST, bool VALUE = false, class V, class L>
    static OA_INLINE V learned_backward(V x, V g, L& a, i64 pos, int n, V t, V* y = nullptr) {
        V d = V{}, value = V{};
        if constexpr (VALUE) value = a.param(0, pos);
        const V gx = g * x;
        PiReduced<V> next{};
        if constexpr (FAST && HALF_TURNS) next = reduced_argument(x, a, pos, n, 1);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos), phi = a.param(2 * n + k, pos);
            V s, c;
            Mask<V> sign{};  // cos z_k = c with this sign (sincospi_unsigned; zero where c is signed)
            if constexpr (FAST && HALF_TURNS) {
                const PiReduced<V> r = next;
                reduce_next(next, x, a, pos, n, k);
                if constexpr (EXT) sincospi_reduced<true>(r, s, c);
                // (No value: c is dF/dc_k's alone, to degree 8. So dc_k differs, by up to 1.41e-7 a
                // term, between this backward and the one that writes the value, whose cosine is F's.)
                else sign = sincospi_unsigned<true, !VALUE>(r, s, c);
            } else if constexpr (FAST) {
                sincos_v<true>(vfma(w, x, -phi), s, c);
            } else {
                for (int l = 0; l < lanes<V>; ++l) {
                    const double z = double(w[l]) * x[l] - phi[l];
                    s[l] = T(std::sin(z));
                    c[l] = T(std::cos(z));
                }
            }
            harmonic_grads<EXT>(a, pos, n, k, x, g, flip(g, sign), gx, t, V(a.param(k, pos)), w, s, c, d);
            if constexpr (VALUE) value += flip(V(a.param(own(n) + 2 * n + k, pos)), sign) * c;
        }
        if constexpr (VALUE) *y = value;
        return g * d;
    }
    template <bool EXT, class V, class L>
    __attribute__((noinline, cold)) static V backward_libm(V x, V g, L& a, i64 pos, int n, bool harm, V t) {
        return backward_sums<EXT, false>(x, g, a, pos, n, harm, t);
    }
    // The backward that writes the value too (kernels.cpp; without an input map). Rows of any
    // frequencies add a_k cos z_k to it (learned_backward); harmonic ones (fixed) run their recurrence on
    // q_k = z^k instead of p_k = g z^k: the sums take g q_k (an FMA each, where p_k took an add), g F'
    // one product by g at the end, and F = b + sum_k (A_k Re q_k + B_k Im q_k) two FMAs per harmonic
    // (A_k, B_k and b in the extra columns: 3n + 1.. and 4n + 1 from own(n) + 1). Not for harmonic rows
    // whose frequencies want their gradient (learned frequencies at the paper's init): that loop
    // measured 1.07x the forward and backward apart (4M float32; two registers a step: 2.0x).
    static bool value_in_backward(T aux, unsigned skip) { return !harmonic(aux) || (skip & (1u << FREQUENCIES)); }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V& y) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        if (!safe(x, aux)) return value_libm(x, g, a, pos, n, harmonic(aux), y);
        if (!harmonic(aux)) return learned_backward<false, true, true>(x, g, a, pos, n, V{}, &y);
        return harmonic_backward_value(x, g, a, pos, n, y);
    }
    // (Fixed frequencies only: value_in_backward.)
    template <class V, class L> static OA_INLINE V harmonic_backward_value(V x, V g, L& a, i64 pos, int n, V& y) {
        return harmonic_backward_value_from(angle_of<false>(x, a, pos, n), g, a, pos, n, y);
    }
    template <class V, class L>
    static OA_INLINE V harmonic_backward_value_from(const Angle<V>& z, V g, L& a, i64 pos, int n, V& y) {
        const int e0 = own(n);  // e_k, f_k, A_k, B_k in columns e0 + k, e0 + n + k, e0 + 2n + k, e0 + 3n + k
        const V c1 = z.c, s1 = z.s;
        V qr = c1, qi = s1, d = V{}, value = a.param(e0 + 4 * n + 1, pos);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            if (k > 1) times_z(qr, qi, c1, s1);  // q_k = q_{k-1} z
            a.acc(k, pos, g * qr);
            a.acc(2 * n + k, pos, g * qi);
            d += a.param(e0 + k, pos) * qr + a.param(e0 + n + k, pos) * qi;
            value += a.param(e0 + 2 * n + k, pos) * qr + a.param(e0 + 3 * n + k, pos) * qi;
        }
        y = value;
        return g * d;
    }
    template <int MODE, class V, class L>
    static OA_INLINE V bwd_value_fast(const Angle<V>& z, V x, V g, L& a, i64 pos, int n_rt, int, T, V& y) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        if constexpr (MODE == ANY) return learned_backward<false, true, true>(x, g, a, pos, n, V{}, &y);
        else return harmonic_backward_value_from(z, g, a, pos, n, y);  // (FIXED: value_mode)
    }
    // Lanes beyond the fast sine's range: the sums as backward_libm's; the value lane by lane with
    // libm in float64 (any frequencies: as learned_backward's, harmonic rows: as forward_libm's).
    template <class V, class L>
    __attribute__((noinline, cold)) static V value_libm(V x, V g, L& a, i64 pos, int n, bool harm, V& y) {
        if (!harm) return learned_backward<false, false, true>(x, g, a, pos, n, V{}, &y);
        const int e0 = own(n);
        const V w1 = a.param(0, pos);
        for (int l = 0; l < lanes<V>; ++l) {
            double out = V(a.param(e0 + 4 * n + 1, pos))[l];
            for (int k = 1; k <= n; ++k) {
                const double z = double(T(k) * w1[l]) * double(x[l]);
                out += double(V(a.param(e0 + 2 * n + k, pos))[l]) * std::cos(z) +
                       double(V(a.param(e0 + 3 * n + k, pos))[l]) * std::sin(z);
            }
            y[l] = T(out);
        }
        return backward_sums<false, false>(x, g, a, pos, n, true, V{});
    }
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V t) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        return safe(x, aux) ? backward_sums<EXT, true>(x, g, a, pos, n, harmonic(aux), t)
                            : backward_libm<EXT>(x, g, a, pos, n, harmonic(aux), t);
    }

    template <int MODE, class V, class L>
    static OA_INLINE V bwd_fast(const Angle<V>& z, V x, V g, L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        if constexpr (MODE == ANY) return learned_backward<false, true>(x, g, a, pos, n, V{});
        else return harmonic_backward_from<MODE == HARMONIC>(z, x, g, a, pos, n);
    }

    // Any frequencies' extra columns (float32): w'_k = w_k / pi and phi'_k = phi_k / pi.
    static void half_turns(const T* raw, T* out, int n, int p, int k) {
        if (!HALF_TURNS) return;
        out[p + k] = T(double(raw[n + k]) / M_PI);
        out[p + n + k] = T(double(raw[2 * n + k]) / M_PI);
    }
    static void prepare_forward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        for (int k = 1; k <= n; ++k) {
            const double amp = double(raw[k]) * inv_factorial<double>(k), w = raw[n + k], phi = raw[2 * n + k];
            if (harmonic(aux)) {
                const double A = amp * std::cos(phi), B = amp * std::sin(phi);
                out[k] = T(A);
                out[2 * n + k] = T(B);
                out[p + k] = T(w * B);
                out[p + n + k] = T(w * A);
                out[p + 2 * n + 1] = T(double(raw[n + 1]) / M_PI);
            } else {
                out[k] = T(amp);
                half_turns(raw, out, n, p, k);
            }
        }
    }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        if (harmonic(aux)) out[0] = raw[n + 1];  // w_1 (the bias needs no value: dF/db = 1)
        out[p + 4 * n + 1] = raw[0];          // b, for the value (bwd_value)
        if (harmonic(aux)) out[p + 4 * n + 2] = T(double(raw[n + 1]) / M_PI);
        for (int k = 1; k <= n; ++k) {
            const double amp = double(raw[k]) * inv_factorial<double>(k), aw = amp * double(raw[n + k]), phi = raw[2 * n + k];
            out[k] = T(aw);
            out[p + 2 * n + k] = T(harmonic(aux) ? amp * std::cos(phi) : amp);  // a_k, or A_k and B_k
            out[p + 3 * n + k] = T(amp * std::sin(phi));
            if (harmonic(aux)) {
                out[n + k] = T(std::cos(phi));
                out[2 * n + k] = T(std::sin(phi));
                out[p + k] = T(aw * std::sin(phi));    // e_k = w_k B_k
                out[p + n + k] = T(-aw * std::cos(phi));  // f_k = -w_k A_k
            } else {
                half_turns(raw, out, n, p, k);
            }
        }
    }
    // The sums' per-group factors (see the top of the file), on the raw row.
    // Harmonic rows first rotate G_c, G_s (in the c_k and phi_k columns) into S_c, S_phi.
    static void finish_backward(const T* raw, const T*, double* grad, int n, int, T aux) {
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
    static T aux(const T* params, i64 G, int P_, int n, bool) {
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
