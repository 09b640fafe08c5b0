// SIMD vectors of the fused CPU kernels: one register (a GCC vector, VT<T>::V) or a Pack of U of them
// computed together, and the few operations that need instructions by name.
//
// Why packs: the families' formulas are chains of dependent operations (a Horner or angle-addition
// recurrence, a running arg-max, a sine's range reduction and polynomial), and one vector's chain is
// longer than the out-of-order window hides on a core with a small scheduler (AMD Zen 3, 16 ymm
// registers: a fixed-frequency Fourier-5 backward used about half of the FMA units' rate). A Pack's
// operators apply each operation to its U vectors in turn, so every statement of a formula issues U
// independent instructions side by side and the U chains overlap. Written once over a vector type
// `V`, a family's code runs on single vectors and on packs alike. (GCC's own 64-byte vectors on an
// AVX2 target are split into pairs the same way, but its comparisons and masks then go lane by lane
// through memory: 3.6x slower.)
//
// Differences from GCC's vector extension that generic code must respect: a ternary on a mask is
// `select(mask, a, b)`, a reinterpreting cast is `as<Type>(v)`, and the types of a vector's lanes,
// masks and unsigned twin are `Lane<V>`, `Mask<V>` and `Unsigned<V>`; `lanes<V>` counts its lanes and
// `registers<V>` its registers. A formula that gains nothing from interleaving (one already bound by
// the FMA units' throughput, whose doubled live registers would only spill) takes a pack's registers
// one after another (`x.v[u]`).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef int64_t i64;

// The SIMD helpers are forced inline: GCC otherwise keeps some (sin/cos) out of line in the largest
// loops, where a call per vector costs more than the arithmetic.
#define OA_INLINE inline __attribute__((always_inline))
#define OA_INLINE_LAMBDA __attribute__((always_inline))  // a lambda's body (the drivers' per-vector steps)

// ---------------------------------------------------------------------------------------------
// One register (GCC/Clang vector extensions): 64-byte vectors (16 floats or 8 doubles) where the
// compiler targets AVX-512 (-march=native on such a CPU: twice the lanes per instruction and 32
// registers), 32-byte vectors (8 floats, 4 doubles) elsewhere. OA_NO_AVX512 forces the latter.
template <typename T> struct VT;
#if defined(__AVX512F__) && !defined(OA_NO_AVX512)
#define OA_VBYTES 64
#else
#define OA_VBYTES 32
#endif
template <> struct VT<float> {
    typedef float V __attribute__((vector_size(OA_VBYTES)));
    typedef int32_t I __attribute__((vector_size(OA_VBYTES)));
    typedef uint32_t U __attribute__((vector_size(OA_VBYTES)));
    static constexpr int W = OA_VBYTES / 4;
};
template <> struct VT<double> {
    typedef double V __attribute__((vector_size(OA_VBYTES)));
    typedef int64_t I __attribute__((vector_size(OA_VBYTES)));
    typedef uint64_t U __attribute__((vector_size(OA_VBYTES)));
    static constexpr int W = OA_VBYTES / 8;
};

template <class V, int U> struct Pack;

// Traits of a register type and of a Pack of them.
template <class V> struct VecTraits {
    typedef std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>> Lane;
    typedef decltype(V{} < V{}) Mask;  // the signed integer vector of the same shape
    typedef std::make_unsigned_t<std::remove_cv_t<std::remove_reference_t<decltype(Mask{}[0])>>> ULane;
    typedef ULane Unsigned __attribute__((vector_size(sizeof(V))));
    static constexpr int W = sizeof(V) / sizeof(Lane);
    static constexpr int REGISTERS = 1;
    static constexpr bool IS_PACK = false;
};
template <class V, int U> struct VecTraits<Pack<V, U>> {
    typedef typename VecTraits<V>::Lane Lane;
    typedef Pack<typename VecTraits<V>::Mask, U> Mask;
    typedef Pack<typename VecTraits<V>::Unsigned, U> Unsigned;
    static constexpr int W = U * VecTraits<V>::W;
    static constexpr int REGISTERS = U;
    static constexpr bool IS_PACK = true;
};
template <class V> using Lane = typename VecTraits<V>::Lane;
template <class V> using Mask = typename VecTraits<V>::Mask;
template <class V> using Unsigned = typename VecTraits<V>::Unsigned;
template <class V> static constexpr int lanes = VecTraits<V>::W;
template <class V> static constexpr int registers = VecTraits<V>::REGISTERS;

// The vector type of T with U registers: VT<T>::V itself for U = 1.
template <typename T, int U> using VecOf = std::conditional_t<U == 1, typename VT<T>::V, Pack<typename VT<T>::V, U>>;

// ---------------------------------------------------------------------------------------------
// Single registers: the operations that need an instruction by name.

// a * b + c rounded once, whatever the compiler's contraction decides (-ffp-contract=fast fuses a
// product used once, not one it shares between expressions): the sin/cos argument w x - phi and the
// range reduction need the single rounding for their accuracy.
static OA_INLINE VT<float>::V vfma(VT<float>::V a, VT<float>::V b, VT<float>::V c) {
#if OA_VBYTES == 64
    return (VT<float>::V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (VT<float>::V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    VT<float>::V out;
    for (int l = 0; l < VT<float>::W; ++l) out[l] = std::fma(a[l], b[l], c[l]);
    return out;
#endif
}
static OA_INLINE VT<double>::V vfma(VT<double>::V a, VT<double>::V b, VT<double>::V c) {
#if OA_VBYTES == 64
    return (VT<double>::V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
    return (VT<double>::V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    VT<double>::V out;
    for (int l = 0; l < VT<double>::W; ++l) out[l] = std::fma(a[l], b[l], c[l]);
    return out;
#endif
}

// 1 / q for q >= 1 (the rational's denominator): the hardware reciprocal estimate (12 bits) and two
// Newton steps, within an ulp of the division (exact at q = 1) at less than its cost (vdivps issues
// once every 5 cycles); a division where there is no AVX estimate and for doubles.
static OA_INLINE VT<float>::V vrecip(VT<float>::V q) {
#if OA_VBYTES == 64
    VT<float>::V r = (VT<float>::V)_mm512_rcp14_ps((__m512)q);
#elif defined(__AVX__)
    VT<float>::V r = (VT<float>::V)_mm256_rcp_ps((__m256)q);
#endif
#if OA_VBYTES == 64 || defined(__AVX__)
    r = r + r * (1.0f - q * r);  // each step squares the relative error (FMAs: -ffp-contract=fast)
    r = r + r * (1.0f - q * r);  // the second makes 1/1 exactly 1 (a rational's identity stays x)
    return q == INFINITY ? VT<float>::V{} : r;  // 1/inf = 0 (the Newton steps would give 0 * inf = NaN)
#else
    return 1.0f / q;
#endif
}
static OA_INLINE VT<double>::V vrecip(VT<double>::V q) { return 1.0 / q; }

// The nearest integer to x (ties to even) of float vectors, |x| < 2^22: one rounding instruction (the
// sum and difference with 1.5 2^23 that give it without one are two dependent adds).
static OA_INLINE VT<float>::V vround(VT<float>::V x) {
#if OA_VBYTES == 64
    return (VT<float>::V)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)
    return (VT<float>::V)_mm256_round_ps((__m256)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    return (x + 12582912.0f) - 12582912.0f;
#endif
}

// An empty statement that takes the register v and gives it back: the compiler must have computed v
// before it and cannot move v's computation past it. A loop summing independent terms then runs in
// the order it is written, one term's chain at a time: GCC otherwise scheduled the five reductions of
// a learned Fourier-5's cosines together, then their polynomials together, which kept more values
// live than AVX2's 16 registers hold (spills; kernel-only forward, 1 thread, 4M float32: 5.17 ms
// with it, 5.82 without). A pack: each of its registers. A no-op where a vector is not one x86 register
// (no AVX: GCC's 32-byte vectors are pairs of SSE registers) and off x86.
template <class V> static OA_INLINE void ordered(V& v) {
    if constexpr (VecTraits<V>::IS_PACK) {
        for (auto& r : v.v) ordered(r);
    } else {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__AVX__)
        asm volatile("" : "+v"(v));
#else
        (void)v;
#endif
    }
}

// Whether any lane of a mask is set: one vector test, not one per lane.
template <typename I> static OA_INLINE bool any_set(I mask) {
#if OA_VBYTES == 64
    if constexpr (sizeof(I) == 64) return _mm512_test_epi64_mask((__m512i)mask, (__m512i)mask) != 0;
#endif
#ifdef __AVX__
    if constexpr (sizeof(I) == 32) return !_mm256_testz_si256((__m256i)mask, (__m256i)mask);
#endif
    uint64_t words[sizeof(I) / 8];
    std::memcpy(words, &mask, sizeof(I));
    uint64_t out = 0;
    for (uint64_t w : words) out |= w;
    return out != 0;
}

// table[idx] lane by lane (idx in [0, lanes)): one permute.
template <class V, class I> static OA_INLINE V permute(V table, I idx) { return __builtin_shuffle(table, idx); }

// ---------------------------------------------------------------------------------------------
// Packs.
#define OA_PACK_LOOP _Pragma("GCC unroll 16") for (int u = 0; u < U; ++u)
#define OA_PACK_BINARY(OP)                                                                                          \
    friend OA_INLINE Pack operator OP(Pack a, const Pack& b) { OA_PACK_LOOP a.v[u] = a.v[u] OP b.v[u]; return a; }  \
    friend OA_INLINE Pack operator OP(Pack a, L s) { OA_PACK_LOOP a.v[u] = a.v[u] OP s; return a; }                 \
    friend OA_INLINE Pack operator OP(L s, Pack a) { OA_PACK_LOOP a.v[u] = s OP a.v[u]; return a; }                 \
    friend OA_INLINE Pack& operator OP##=(Pack& a, const Pack& b) { OA_PACK_LOOP a.v[u] = a.v[u] OP b.v[u]; return a; }
#define OA_PACK_COMPARE(OP)                                                                                             \
    friend OA_INLINE M operator OP(const Pack& a, const Pack& b) { M m; OA_PACK_LOOP m.v[u] = a.v[u] OP b.v[u]; return m; } \
    friend OA_INLINE M operator OP(const Pack& a, L s) { M m; OA_PACK_LOOP m.v[u] = a.v[u] OP s; return m; }

template <class V, int U> struct Pack {
    static_assert(U >= 1, "a pack holds at least one vector");
    typedef typename VecTraits<V>::Lane L;
    typedef Pack<typename VecTraits<V>::Mask, U> M;
    V v[U];
    Pack() = default;
    Pack(V s) { OA_PACK_LOOP v[u] = s; }  // one register in every slot (a parameter of the group)

    // Lane l of the U * W lanes (the libm fallbacks' per-lane loops): read, or assign through a proxy.
    struct LaneRef {
        Pack& p;
        int l;
        operator L() const { return p.v[l / VecTraits<V>::W][l % VecTraits<V>::W]; }
        LaneRef& operator=(L s) {
            p.v[l / VecTraits<V>::W][l % VecTraits<V>::W] = s;
            return *this;
        }
    };
    LaneRef operator[](int l) { return LaneRef{*this, l}; }
    L operator[](int l) const { return v[l / VecTraits<V>::W][l % VecTraits<V>::W]; }

    OA_PACK_BINARY(+)
    OA_PACK_BINARY(-)
    OA_PACK_BINARY(*)
    OA_PACK_BINARY(/)
    OA_PACK_BINARY(&)
    OA_PACK_BINARY(|)
    OA_PACK_BINARY(^)
    friend OA_INLINE Pack operator-(Pack a) { OA_PACK_LOOP a.v[u] = -a.v[u]; return a; }
    friend OA_INLINE Pack operator~(Pack a) { OA_PACK_LOOP a.v[u] = ~a.v[u]; return a; }
    friend OA_INLINE Pack operator<<(Pack a, unsigned s) { OA_PACK_LOOP a.v[u] = a.v[u] << s; return a; }
    OA_PACK_COMPARE(<)
    OA_PACK_COMPARE(>)
    OA_PACK_COMPARE(<=)
    OA_PACK_COMPARE(>=)
    OA_PACK_COMPARE(==)
    OA_PACK_COMPARE(!=)

    // The named operations, register by register (hidden friends: a register argument converts).
    friend OA_INLINE Pack vfma(Pack a, const Pack& b, const Pack& c) { OA_PACK_LOOP a.v[u] = vfma(a.v[u], b.v[u], c.v[u]); return a; }
    friend OA_INLINE Pack vrecip(Pack a) { OA_PACK_LOOP a.v[u] = vrecip(a.v[u]); return a; }
    friend OA_INLINE Pack vround(Pack a) { OA_PACK_LOOP a.v[u] = vround(a.v[u]); return a; }
};
#undef OA_PACK_BINARY
#undef OA_PACK_COMPARE

template <class I, int U> static OA_INLINE bool any_set(const Pack<I, U>& mask) {
    I all = mask.v[0];
    for (int u = 1; u < U; ++u) all |= mask.v[u];
    return any_set(all);
}
template <class V, class I, int U> static OA_INLINE Pack<V, U> permute(V table, const Pack<I, U>& idx) {
    Pack<V, U> out;
    OA_PACK_LOOP out.v[u] = permute(table, idx.v[u]);
    return out;
}
// The sum of a pack's registers (what a pack adds to a register accumulator; values only: masks are
// combined with |, see Blocked::mark).
template <class V> static OA_INLINE auto fold(const V& x) {
    if constexpr (VecTraits<V>::IS_PACK) {
        auto out = x.v[0];
        for (int u = 1; u < int(sizeof(x.v) / sizeof(x.v[0])); ++u) out += x.v[u];
        return out;
    } else {
        return x;
    }
}
#undef OA_PACK_LOOP

// ---------------------------------------------------------------------------------------------
// Generic helpers (registers and packs).

// Reinterpret the bits (a vector cast): as<Mask<V>>(x), as<V>(bits).
template <class To, class From> static OA_INLINE To as(const From& x) {
    if constexpr (VecTraits<From>::IS_PACK) {
        To out;
        for (int u = 0; u < int(sizeof(x.v) / sizeof(x.v[0])); ++u)
            out.v[u] = as<std::remove_reference_t<decltype(out.v[0])>>(x.v[u]);
        return out;
    } else {
        return (To)x;
    }
}

// mask ? a : b, lane by lane (mask lanes all ones or zero).
template <class M, class V> static OA_INLINE V select(const M& mask, const V& a, const V& b) {
    if constexpr (VecTraits<V>::IS_PACK) {
        V out;
        for (int u = 0; u < int(sizeof(a.v) / sizeof(a.v[0])); ++u) out.v[u] = select(mask.v[u], a.v[u], b.v[u]);
        return out;
    } else {
        return mask ? a : b;
    }
}

// Unaligned loads and stores; a pack's register by register (a memcpy of the whole struct goes through
// the stack in 16-byte pieces, and the 32-byte reads of those stall on store forwarding).
template <class V> static OA_INLINE V load(const void* p) {
    V v;
    if constexpr (VecTraits<V>::IS_PACK) {
        for (int u = 0; u < int(sizeof(v.v) / sizeof(v.v[0])); ++u)
            std::memcpy(&v.v[u], static_cast<const char*>(p) + u * sizeof(v.v[0]), sizeof(v.v[0]));
    } else {
        std::memcpy(&v, p, sizeof v);
    }
    return v;
}
template <class V> static OA_INLINE void store(void* p, const V& v) {
    if constexpr (VecTraits<V>::IS_PACK) {
        for (int u = 0; u < int(sizeof(v.v) / sizeof(v.v[0])); ++u)
            std::memcpy(static_cast<char*>(p) + u * sizeof(v.v[0]), &v.v[u], sizeof(v.v[0]));
    } else {
        std::memcpy(p, &v, sizeof v);
    }
}

// A vector of one scalar (splat<Mask<V>>(k) for an integer one).
template <class V, class S> static OA_INLINE V splat(S s) { return V{} + Lane<V>(s); }

template <class V> static OA_INLINE Lane<V> lane_sum(const V& v) {
    Lane<V> out = 0;
    for (int l = 0; l < lanes<V>; ++l) out += v[l];
    return out;
}
