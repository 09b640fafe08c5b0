"""The fused CPU path against the reference: outputs, input gradients and every parameter gradient."""

import math
import re
import warnings

import pytest
import torch
from torch import nn

import orthoact
import orthoact.functional as OF
from conftest import VARIANTS, assert_matches_reference, call, make, params_of
from orthoact import backends
from orthoact.ops import _build

# (shape, groups, channel_dim): odd sizes, a prime-sized 3-D tensor, short runs (rows layout) and
# long runs (blocked layout) of one group.


def uses_fused(y: torch.Tensor) -> bool:
    """Whether the autograd graph of ``y`` contains the fused op."""
    stack, seen = [y.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "fused_forward" in type(fn).__name__:
            return True
        stack.extend(f for f, _ in fn.next_functions)
    return False


CASES = [
    ((1,), 1, -1),
    ((7,), 1, -1),
    ((1023,), 1, -1),
    ((13, 17, 19), 1, -1),
    ((13, 17, 19), 17, 1),
    ((5, 6, 7), 3, 1),
    ((3, 300), 300, -1),
    ((4, 6, 611), 2, 1),
    ((2, 9, 37), 9, 1),
]


def assert_uses_fused(module, x, params, channel_dim):
    if x.numel():
        assert uses_fused(call(module, x.clone().requires_grad_(), params, channel_dim=channel_dim, backend="fused"))


def compare(variant, shape, groups, channel_dim, dtype, degree=None, seed=0, scale=2.0, param_dtype=None):
    """Fused path with input ``dtype`` and parameters in ``param_dtype`` (default: the input's, at
    least float32) against the float64 reference on the same values, uncast."""
    param_dtype = param_dtype or (dtype if dtype in (torch.float32, torch.float64) else torch.float32)
    module = make(variant, degree, groups=groups, dtype=param_dtype, seed=seed)
    torch.manual_seed(seed + 1)
    x = (scale * torch.randn(shape, dtype=torch.float64)).to(dtype)
    grad = torch.randn(shape, dtype=torch.float64).to(dtype)
    assert_matches_reference(module, x, grad, channel_dim, "fused", check_graph=assert_uses_fused)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-g{c[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_reference(variant, case, dtype):
    compare(variant, *case, dtype)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_half_precision(variant, dtype):
    compare(variant, (4, 6, 33), 3, 1, dtype, scale=1.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype, param_dtype", [(torch.float32, torch.float64), (torch.float64, torch.float32),
                                                (torch.bfloat16, torch.float64), (torch.float16, torch.float64)])
def test_fused_mixed_dtypes(variant, dtype, param_dtype):
    """Regression: a float32 input with float64 parameters read the float64 memory as floats."""
    compare(variant, (5, 6, 37), 3, 1, dtype, scale=1.0, param_dtype=param_dtype)
    compare(variant, (1031,), 1, -1, dtype, scale=1.0, param_dtype=param_dtype)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("degree", [1, 2, 7, 11, 20])
def test_fused_degrees(variant, degree):
    """Degrees 1-10 run specialised float32 code, higher ones the generic loop."""
    compare(variant, (3, 1000), 1, -1, torch.float32, degree=degree, scale=1.0)
    compare(variant, (2, 4, 65), 4, 1, torch.float64, degree=degree, scale=1.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("groups", [1, 3])
def test_fused_gradcheck(variant, groups):
    module = make(variant, groups=groups, seed=5)
    x = torch.randn(2, 3 * groups, 9, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    fn = lambda x, *p: call(module, x, p, channel_dim=1, backend="fused")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def _half_turns(w, phi, x):
    """The float32 argument of the fused kernels' sin/cos for learned frequencies, in half-turns:
    u = fl(w' x - phi') with w' = fl(w / pi), phi' = fl(phi / pi) (one rounding, an FMA), as float64."""
    wp, pp = ((t.double() / math.pi).float().double() for t in (w, phi))
    return (wp * x.double() - pp).float().double()


def test_fused_fourier_is_accurate_up_to_the_reduction_bound():
    """Learned frequencies up to the fast path's bound (|w x| = 8000): the argument in half-turns is
    reduced exactly. The float32 argument is itself rounded (ulp(8000 / pi) = 2.4e-4), so the
    comparison is with the cosines of the kernels' float32 arguments (`_half_turns`), in float64."""
    act = make("fourier", groups=1, dtype=torch.float32, seed=3)
    with torch.no_grad():
        act.frequencies.fill_(5.0)
    act.backend = "fused"
    x = torch.linspace(-1600, 1600, 100_003)
    b, c, w, phi = (t[0] for t in act.tensors())
    u = _half_turns(w[:, None], phi[:, None], x)
    inv = torch.tensor([1 / math.factorial(k) for k in range(1, len(c) + 1)], dtype=torch.float64)
    exact = b.double() + ((c.double() * inv)[:, None] * torch.cos(math.pi * u)).sum(0)
    torch.testing.assert_close(act(x).double(), exact, rtol=0, atol=3e-6)


def test_fused_sine_and_cosine_are_float32_accurate():
    """The kernels' own sin/cos (learned frequencies: the argument in half-turns, an exact reduction
    to [-1/2, 1/2] and minimax polynomials in pi f) within about one ulp of 1 of the float64 values of
    the same float32 arguments: the value of F = cos(z_1) (c_2 = 0; w_2 = 3 keeps the frequencies off
    the harmonic grid) and its derivative F' = -w_1 sin(z_1), for |z_1| up to 8000 (the fast range
    ends at 8192) and densely near 0."""
    act = orthoact.Fourier(2, backend="fused")
    with torch.no_grad():
        act.bias.zero_()
        act.coefficients.copy_(torch.tensor([[1.0, 0.0]]))
        act.frequencies.copy_(torch.tensor([[5.0, 3.0]]))
        act.phases.copy_(torch.tensor([[0.3, 0.0]]))
    x = torch.cat([torch.linspace(-1600, 1600, 400_003), torch.linspace(-3, 3, 100_001)]).requires_grad_()
    y = act(x)
    y.backward(torch.ones_like(y))
    u = _half_turns(torch.tensor(5.0), torch.tensor(0.3), x.detach())
    assert float(math.pi * u.abs().max()) > 7999
    # 8.4e-8 measured; the backward's degree-8 cosine (not for values) would err 1.38e-7 here
    assert float((y.detach().double() - torch.cos(math.pi * u)).abs().max()) < 1.2e-7
    assert float((x.grad.double() / -5.0 - torch.sin(math.pi * u)).abs().max()) < 2e-7
    # the value the backward's pass writes (forward_and_backward, the recompute MLP's) is the forward's
    value, _, _ = act.forward_and_backward(x.detach(), torch.ones_like(y))
    assert torch.equal(value, y.detach())


def test_fused_gradient_cosine_is_float32_accurate():
    """The backward's cosine of learned frequencies, which only enters dF/dc_k's sum, is a degree-8
    polynomial (`cospi_poly8`, fourier.h): within 1.41e-7 of cos(pi u) of the kernels' float32
    argument (1.35e-7 at these points). One group per element (one row of 200k channels), so each
    group's dF/dc_1 is that element's cosine alone; and the sine of the same pass (F') keeps its
    bound. (The values' degree-10 cosine is held to 1.2e-7 by the test above.)"""
    n = 200_000
    act = orthoact.Fourier(2, groups=n, backend="fused")
    with torch.no_grad():
        act.bias.zero_()
        act.coefficients.copy_(torch.tensor([1.0, 0.0]).expand(n, 2))
        act.frequencies.copy_(torch.tensor([5.0, 3.0]).expand(n, 2))
        act.phases.copy_(torch.tensor([0.3, 0.0]).expand(n, 2))
    x = torch.cat([torch.linspace(-1600, 1600, n // 2), torch.linspace(-3, 3, n - n // 2)])[None].requires_grad_()
    y = act(x)
    y.backward(torch.ones_like(y))
    u = _half_turns(torch.tensor(5.0), torch.tensor(0.3), x.detach()[0])
    err = (act.coefficients.grad[:, 0].double() - torch.cos(math.pi * u)).abs().max()
    assert float(err) < 1.41e-7
    assert float((x.grad[0].double() / -5.0 - torch.sin(math.pi * u)).abs().max()) < 2e-7


def test_fused_harmonic_sine_and_cosine_are_float32_accurate():
    """Harmonic rows (one sin/cos per element, w_k = k w_1) take their angle in half-turns too,
    u = fl(w'_1 x) with w'_1 = fl(w_1 / pi) (`_half_turns` with no phase). Degree 1 with phase 0,
    F = cos(pi u) and F' = -w_1 sin(pi u) within about one ulp of 1 of the float64 values, for
    |w_1 x| up to 8000 and densely near 0."""
    act = orthoact.Fourier(1, backend="fused", learn_frequencies=False)
    with torch.no_grad():
        act.bias.zero_()
        act.coefficients.fill_(1.0)
        act.frequencies.fill_(5.0)
        act.phases.zero_()
    x = torch.cat([torch.linspace(-1600, 1600, 400_003), torch.linspace(-3, 3, 100_001)]).requires_grad_()
    y = act(x)
    y.backward(torch.ones_like(y))
    u = _half_turns(torch.tensor(5.0), torch.tensor(0.0), x.detach())
    assert float(math.pi * u.abs().max()) > 7999
    assert float((y.detach().double() - torch.cos(math.pi * u)).abs().max()) < 1.6e-7
    assert float((x.grad.double() / -5.0 - torch.sin(math.pi * u)).abs().max()) < 2e-7


@pytest.mark.slow
def test_fused_kernels_with_256_bit_vectors(tmp_path):
    """Where the CPU has AVX-512 the kernels use 64-byte vectors; the 32-byte (AVX2) build, what
    CPUs without it get, passes this file's comparisons with the reference too, and the value written
    by the backward's pass (test_recompute.py; its two-register loops exist only there) (built afresh, for
    the families with vector code of their own beyond the shared drivers: Fourier's sin/cos, the
    rational's reciprocal estimate, the tropical rational's slope permute, and Hermite for the plain
    drivers)."""
    import os
    import subprocess
    import sys

    if "avx512f" not in _build._cpu_signature().split():
        pytest.skip("the CPU has no AVX-512: the default build already uses 32-byte vectors")
    assert _build.library("hermite").library.oa_vector_bytes() == 64
    env = {**os.environ, _build.VECTOR_BITS_ENV: "256", "ORTHOACT_CACHE_DIR": str(tmp_path / "cache")}
    test_file = os.path.abspath(__file__)
    root = os.path.dirname(os.path.dirname(os.path.dirname(test_file)))
    families = "['hermite', 'fourier', 'rational', 'tropical_rational']"
    width = subprocess.run([sys.executable, "-c", f"from orthoact.ops import _build; _build.load({families}); "
                            "print(_build.library('hermite').library.oa_vector_bytes())"],
                           env=env, capture_output=True, text=True, timeout=600, cwd=root)
    assert width.stdout.strip() == "32", width.stdout + width.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
                           "-k", "(hermite or fourier or rational) and (matches_reference or degrees or accurate or large "
                           "or gradcheck or ties or signs or value or nonfinite or frozen)",
                           test_file, os.path.join(os.path.dirname(test_file), "test_recompute.py")],
                          env=env, capture_output=True, text=True, timeout=1200, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


def test_fused_large_fourier_arguments_use_exact_cosine():
    """|w x - phi| beyond the float32 reduction's range is recomputed with libm in float64.

    The float32 reference rounds the argument w x itself (ulp(1e4) = 1e-3), so compare with the
    reference in float64 on the same float32 values.
    """
    act = make("fourier", groups=1, dtype=torch.float32, seed=3)
    act.backend = "fused"
    torch.manual_seed(0)
    x = torch.empty(4099).uniform_(1e4, 1e5) * torch.randn(4099).sign()
    exact = OF.fourier(x.double(), *[p.double() for p in params_of(act).values()], backend="reference")
    torch.testing.assert_close(act(x).double(), exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("domain", [None, (-1.5, 1.5)], ids=["plain", "domain"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_rational_a_denominator_signs(dtype, domain):
    """Version A's kernels work in |x| with |b_j| and apply sgn(b_j) to the b_j gradients per group:
    negative, positive and zero b_j (gradient 0, as the reference's abs) against the reference, and a
    NaN b_j makes its group's gradients NaN."""
    act = orthoact.Rational(5, 4, version="A", groups=2, channel_dim=1, domain=domain).to(dtype)
    with torch.no_grad():
        act.numerator.copy_(torch.tensor([[0.1, 1.0, -0.3, 0.2, 0.05, -0.01], [0.0, 0.8, 0.2, -0.1, 0.02, 0.003]]))
        act.denominator.copy_(torch.tensor([[0.0, -0.5, 0.3, 0.0], [-1.2, 0.0, -0.04, 0.2]]))
    x = 3 * torch.randn(7, 2, 301, dtype=dtype)
    assert_matches_reference(act, x, torch.randn_like(x), channel_dim=1)
    with torch.no_grad():
        act.denominator[1, 2] = float("nan")
    act.backend = "fused"
    act.zero_grad()
    act(x).sum().backward()
    assert act.denominator.grad[1].isnan().all() and act.numerator.grad[1].isnan().all()
    assert act.denominator.grad[0].isfinite().all() and (act.denominator.grad[0, [0, 3]] == 0).all()


@pytest.mark.parametrize("groups", [1, 3])
def test_fused_tropical_rational_ties_go_to_the_first_piece(groups):
    """Repeated pieces tie everywhere: value, slope and every gradient go to the first of them, in
    the runs layout (slope by permute) and the rows layout (channels last, slope by blend)."""
    act = orthoact.TropicalRational(5, groups=groups, channel_dim=-1)
    with torch.no_grad():
        act.slopes_num.copy_(torch.tensor([0.5, -1.0, 0.5, 2.0, -1.0, 2.0]).expand_as(act.slopes_num))
        act.offsets_num.copy_(torch.tensor([0.0, 0.3, 0.0, -1.0, 0.3, -1.0]).expand_as(act.offsets_num))
        act.slopes_den.copy_(torch.tensor([-0.5, -0.5, 1.0, 1.0, 0.0, 0.0]).expand_as(act.slopes_den))
        act.offsets_den.copy_(torch.tensor([0.2, 0.2, -0.5, -0.5, 0.1, 0.1]).expand_as(act.offsets_den))
    for shape in [(4, 5000 * groups), (5000, 3 * groups)]:  # long runs of one group / short rows
        x = torch.linspace(-4, 4, math.prod(shape)).reshape(shape)
        assert_matches_reference(act, x, torch.randn(shape))
        act.zero_grad()
        act.backend = "fused"
        act(x).sum().backward()
        for name in ("slopes_num", "offsets_num", "slopes_den", "offsets_den"):
            grad = getattr(act, name).grad
            assert (grad[:, [2, 4, 5] if name.endswith("num") else [1, 3, 5]] == 0).all(), (name, grad)


def _lines_through_one_point(act):
    """TropicalRational lines, every group alike: the numerator's pieces 0-3 and 5 all pass through
    (1, 0) (5 repeats 3), 4 lies below the others everywhere; the denominator's 2 and 3 cross at
    x = -0.5 (a float), 0 is the envelope's left piece, 1 and 5 never win, 4 wins at the far right."""
    with torch.no_grad():
        act.slopes_num.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0, 0.0, 2.0]).expand_as(act.slopes_num))
        act.offsets_num.copy_(torch.tensor([0.0, -1.0, 1.0, -2.0, -5.0, -2.0]).expand_as(act.offsets_num))
        act.slopes_den.copy_(torch.tensor([-3.0, -0.25, -1.0, 1.0, 4.0, 0.5]).expand_as(act.slopes_den))
        act.offsets_den.copy_(torch.tensor([-3.0, -6.0, 0.0, 1.0, -12.0, -7.0]).expand_as(act.offsets_den))


@pytest.mark.parametrize("groups", [1, 3])
def test_fused_tropical_rational_envelope_pieces(groups):
    """The float32 backward reads each max from its upper envelope (the pieces of x's axis and their
    first arg-max line): lines meeting in one point at a float x (a piece of one value, x = 1, where
    the first of the tied lines wins, though it wins nowhere else), a line below the envelope and a
    repeated line (gradients exactly 0), crossings at floats and between them, in the runs layout and
    the rows layout, against the reference."""
    act = orthoact.TropicalRational(5, groups=groups, channel_dim=-1)
    _lines_through_one_point(act)
    one = torch.tensor(1.0)
    near = [-0.5, torch.nextafter(torch.tensor(-0.5), -one).item(), torch.nextafter(torch.tensor(-0.5), one).item(),
            1.0, torch.nextafter(one, 2 * one).item(), torch.nextafter(one, 0 * one).item(), 1.0, 1.0, -3.5, 3.7]
    for shape in [(4, 5000 * groups), (5000, 3 * groups)]:  # long runs of one group / short rows
        x = torch.linspace(-6, 6, math.prod(shape))
        x[: len(near) * 40] = torch.tensor(near).repeat(40)
        x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))].reshape(shape)
        g = torch.randn(shape)
        assert_matches_reference(act, x, g)
        act.zero_grad()
        act.backend = "fused"
        act(x).backward(g)
        if groups == 1:  # line 0 wins at x = 1 only: g and g x summed there
            assert act.offsets_num.grad[0, 0].item() == pytest.approx(g[x == 1.0].double().sum().item(), rel=1e-5)
            assert act.slopes_num.grad[0, 0].item() == pytest.approx(g[x == 1.0].double().sum().item(), rel=1e-5)
        for name, never in (("slopes_num", [1, 4, 5]), ("offsets_num", [1, 4, 5]),
                            ("slopes_den", [1, 5]), ("offsets_den", [1, 5])):
            assert (getattr(act, name).grad[:, never] == 0).all(), (name, getattr(act, name).grad)


def test_fused_tropical_rational_envelope_sums_to_lines():
    """Sums per envelope piece go back to the pieces' lines in the group they belong to: groups with
    different lines (one random, one with lines through one point, one with a line only on a
    piece of one value), channels first (runs) and channels last (rows), every gradient against the
    reference, float32 and bfloat16 inputs, and with a NaN input in one group (every gradient of that
    group NaN, the others finite)."""
    act = orthoact.TropicalRational(5, groups=3, channel_dim=1)
    torch.manual_seed(5)
    with torch.no_grad():
        for name in ("slopes_num", "offsets_num", "slopes_den", "offsets_den"):
            getattr(act, name).normal_()
        act.slopes_num[1] = torch.tensor([0.0, 1.0, -1.0, 2.0, 0.0, 2.0])
        act.offsets_num[1] = torch.tensor([0.0, -1.0, 1.0, -2.0, -5.0, -2.0])
    for channel_dim, shape in ((1, (2, 3, 4001)), (-1, (2, 4001, 3))):
        act.channel_dim = channel_dim
        x = 2 * torch.randn(shape)
        x.view(-1)[::7] = 1.0
        for dtype in (torch.float32, torch.bfloat16):
            assert_matches_reference(act, x.to(dtype), torch.randn(shape).to(dtype), channel_dim=channel_dim)
        x[(0, 2, 5) if channel_dim == 1 else (0, 5, 2)] = float("nan")
        act.backend = "fused"
        act.zero_grad()
        act(x).sum().backward()
        for name in ("slopes_num", "offsets_num", "slopes_den", "offsets_den"):
            grad = getattr(act, name).grad
            assert grad[2].isnan().all() and grad[:2].isfinite().all(), (name, grad)


def _exact_first_argmax(slopes, offsets, x):
    """The first arg-max of s_k x + o_k per element of x, in exact rational arithmetic."""
    from fractions import Fraction

    s = [Fraction(float(v)) for v in slopes]
    o = [Fraction(float(v)) for v in offsets]
    out = []
    for xv in x.tolist():
        values = [sk * Fraction(xv) + ok for sk, ok in zip(s, o)]
        out.append(values.index(max(values)))
    return torch.tensor(out)


def _floats_around_crossings(slopes, offsets):
    """The float32 values next to every crossing of two lines (the two around it and one more each side)."""
    from fractions import Fraction

    import numpy as np

    out = []
    for i in range(len(slopes)):
        for j in range(i):
            if slopes[i] != slopes[j]:
                c = (Fraction(float(offsets[j])) - Fraction(float(offsets[i]))) / \
                    (Fraction(float(slopes[i])) - Fraction(float(slopes[j])))
                f = np.float32(float(c))
                if abs(f) < 1e30:
                    down = np.nextafter(f, np.float32(-np.inf))
                    up = np.nextafter(f, np.float32(np.inf))
                    out += [np.nextafter(down, np.float32(-np.inf)), down, f, up, np.nextafter(up, np.float32(np.inf))]
    return torch.tensor(np.array(out, dtype=np.float32))


@pytest.mark.parametrize("case", ["normal-0", "normal-1", "normal-2", "nearly-parallel", "wide", "degree-10"])
@pytest.mark.parametrize("groups", [1, 3])
def test_fused_tropical_rational_gradients_go_to_the_exact_first_argmax(case, groups):
    """In the runs layout (long runs of one group) every element's gradient goes to the first arg-max
    of the exact values s_k x + o_k (rational arithmetic; the envelope), at the floats next to every
    crossing of two lines and elsewhere: with g = 1 the offsets' gradients are the counts of elements
    per line, compared exactly, and the slopes' the sums of x. Cases: normal lines, nearly parallel
    ones (slopes and offsets one float apart, where rounding the values hides the order), magnitudes
    far apart, degree 10; one group and three. (The rows layout compares float32-rounded values:
    it matches the reference within the tolerances of the other tests.)"""
    degree = 10 if case == "degree-10" else 5
    act = orthoact.TropicalRational(degree, groups=groups, channel_dim=0)
    g = torch.Generator().manual_seed(int(case[-1]) if case[-1].isdigit() else 7)
    lines = {name: torch.randn(degree + 1, generator=g) for name in ("slopes_num", "offsets_num", "slopes_den",
                                                                      "offsets_den")}
    if case == "nearly-parallel":  # the reviewer's case: line 1 above line 0 by one float, everywhere
        half, quarter = torch.tensor(0.5), torch.tensor(0.25)
        lines["slopes_num"] = torch.tensor([0.5, 0.5, torch.nextafter(half, half + 1).item(), -0.5, 0.0, 1e-3])
        lines["offsets_num"] = torch.tensor([0.25, torch.nextafter(quarter, half).item(), -200.0, -1.0, -3.0, 0.3])
    if case == "wide":
        lines["slopes_num"] = lines["slopes_num"] * torch.tensor([1e6, 1.0, 1e-2, 3e3, 1.0, 1e-1])
        lines["offsets_den"] = lines["offsets_den"] * torch.tensor([1e-3, 1.0, 1e5, 1.0, 1e2, 1.0])
    with torch.no_grad():
        for name, value in lines.items():
            getattr(act, name).copy_(value.expand_as(getattr(act, name)))
    x = torch.cat([_floats_around_crossings(lines["slopes_num"], lines["offsets_num"]),
                   _floats_around_crossings(lines["slopes_den"], lines["offsets_den"]),
                   torch.tensor([199.0, 3000.0, 1e6, -1e6, 0.0, -0.0]), 3 * torch.randn(300, generator=g)])
    n_rows = 600 // x.numel() + 1
    xs = x.repeat(groups, n_rows)  # (groups, n_rows * len(x)): a run of at least 600 elements per group
    act.backend = "fused"
    act.zero_grad()
    act(xs).backward(torch.ones_like(xs))
    for part, sign in (("num", 1), ("den", -1)):
        arg = _exact_first_argmax(lines[f"slopes_{part}"], lines[f"offsets_{part}"], x)
        counts = torch.bincount(arg, minlength=degree + 1).double() * n_rows
        sums = torch.zeros(degree + 1, dtype=torch.float64).index_add_(0, arg, x.double()) * n_rows
        for grp in range(groups):
            assert torch.equal(getattr(act, f"offsets_{part}").grad[grp].double(), sign * counts), (part, grp)
            torch.testing.assert_close(getattr(act, f"slopes_{part}").grad[grp].double(), sign * sums,
                                       rtol=1e-5, atol=1e-5 * x.abs().sum().item() * n_rows)


@pytest.mark.parametrize("case", ["paper", "normal", "nearly-tied", "degree-1", "degree-10"])
@pytest.mark.parametrize("groups", [1, 3])
def test_fused_tropical_gradients_go_to_the_exact_first_argmax(case, groups):
    """Tropical's float32 backward in the runs layout reads the arg-max from the lines' upper envelope
    (as TropicalRational's): every element's gradient goes to the first arg-max of the exact values
    k x + a_k (rational arithmetic), at the floats next to every crossing and elsewhere, where comparing
    float32-rounded values picks another line within a rounding of a crossing (the paper's init, all
    offsets 1: every line crosses at 0, and each 0 < x below about 1e-7 rounded to a tie). With g = 1
    the offsets' gradients are s times the counts per line (the counts compared exactly) and the
    input gradient s times the line; x = +inf goes to line 1 and -inf to line 0 (the rule at infinity,
    as before). The same from `forward_and_backward` (the backward that writes the value too), whose
    values equal the forward's, +inf and s a_0 at the infinities. Cases: the paper's init, normal
    offsets, offsets one float apart, degree 1 (the last piece line 1's), degree 10 (no permute with
    8-lane vectors); one group, and three with offsets of their own."""
    degree = {"degree-1": 1, "degree-10": 10}.get(case, 5)
    act = orthoact.Tropical(degree, groups=groups, channel_dim=0, backend="fused")
    gen = torch.Generator().manual_seed(3)
    offsets = torch.randn(groups, degree + 1, generator=gen)
    if case == "paper":
        offsets = torch.ones(groups, degree + 1) + torch.arange(groups)[:, None]
    if case == "nearly-tied":
        one = torch.tensor(1.0)
        offsets = torch.tensor([1.0, torch.nextafter(one, 2 * one).item(), torch.nextafter(one, 0 * one).item(),
                                1.0, -1.0, torch.nextafter(-one, 0 * one).item()]).expand(groups, -1) * \
            2.0 ** torch.arange(groups)[:, None]
    with torch.no_grad():
        act.offsets.copy_(offsets)
    slopes = torch.arange(degree + 1, dtype=torch.float32)
    finite = [torch.cat([_floats_around_crossings(slopes, o), torch.tensor([1e-8, -1e-8, 2e-8, 0.0, -0.0]),
                         3 * torch.randn(300, generator=gen)]) for o in offsets]
    length = max(f.numel() for f in finite) + 2
    finite = [torch.cat([f, f[: length - 2 - f.numel()]]) for f in finite]  # one length for every group
    x = torch.stack([torch.cat([f, torch.tensor([math.inf, -math.inf])]) for f in finite])
    n_rows = 600 // length + 1
    xs = x.repeat(1, n_rows).requires_grad_()  # (groups, n_rows * length): runs of at least 600 elements
    y = act(xs)
    y.backward(torch.ones_like(y))
    values, _, (offsets_grad,) = act.forward_and_backward(xs.detach(), torch.ones_like(xs), need_input_grad=False)
    scale = math.sqrt(2.0) / degree
    for grp in range(groups):
        arg = torch.cat([_exact_first_argmax(slopes, offsets[grp], finite[grp]), torch.tensor([1, 0])])
        counts = torch.bincount(arg, minlength=degree + 1).double() * n_rows
        for grad in (act.offsets.grad[grp], offsets_grad[grp]):
            assert torch.equal((grad.double() / scale).round(), counts), (grp, grad / scale, counts)
        torch.testing.assert_close(xs.grad[grp].double(), (scale * arg.double()).repeat(n_rows), rtol=1e-6, atol=0)
        assert y[grp, length - 2].item() == math.inf
        assert y[grp, length - 1].item() == pytest.approx(scale * offsets[grp, 0].item())
    torch.testing.assert_close(values, y.detach(), rtol=1e-6, atol=0)


def test_fused_only_parameter_or_only_input_grad():
    act = orthoact.Hermite(3, backend="fused")
    x = torch.randn(100)
    act(x).sum().backward()  # input does not require grad
    assert act.coefficients.grad is not None
    act.coefficients.requires_grad_(False)
    x.requires_grad_()
    act(x).sum().backward()
    assert x.grad is not None


def test_fused_thread_count_does_not_change_results():
    act = make("fourier", groups=1, dtype=torch.float32, seed=2)
    act.backend = "fused"
    x = torch.randn(300_000, requires_grad=True)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            act.zero_grad()
            x.grad = None
            y = act(x)
            y.sum().backward()
            outs.append((y.detach(), x.grad.clone(), act.coefficients.grad.clone()))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=0)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=0, atol=0)
    torch.testing.assert_close(outs[0][2], outs[1][2], rtol=1e-5, atol=1e-5)


class _PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that changes nothing: under it every call goes through the custom ops."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _values_and_grads(act, x, dy):
    x = x.clone().requires_grad_()
    act.zero_grad()
    y = act(x)
    y.backward(dy)
    return [y.detach(), x.grad, *(p.grad for p in act.parameters())]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("maps", [{}, {"clamp": True}], ids=["plain", "clamp"])
def test_eager_path_equals_the_custom_op(variant, maps):
    """Eager calls skip the custom ops (a plain autograd.Function on the parameter tensors): values and
    every gradient equal the custom op's exactly, parameters in their own dtype (bfloat16 here)."""
    act = make(variant, groups=3, dtype=torch.bfloat16, seed=4, backend="fused", **maps)
    x, dy = torch.randn(2, 3, 50), torch.randn(2, 3, 50)
    act.channel_dim = 1
    eager = _values_and_grads(act, x, dy)
    with _PassThrough():
        custom = _values_and_grads(act, x, dy)
    assert len(eager) == 2 + len(list(act.parameters()))
    for a, b in zip(eager, custom):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_eager_calls_skip_the_custom_op_and_traced_ones_keep_it():
    act = orthoact.Rational(5, 4, backend="fused")
    x = torch.randn(64, requires_grad=True)
    with torch.profiler.profile() as prof:
        act(x).sum().backward()
    names = {e.name for e in prof.events()}
    assert not any(n.startswith("orthoact::") for n in names), sorted(n for n in names if "orthoact" in n)
    with torch.profiler.profile() as prof, _PassThrough():
        act(x).sum().backward()
    names = {e.name for e in prof.events()}
    assert {"orthoact::fused_forward", "orthoact::fused_backward"} <= names
    # fake tensors (shape propagation, torch.export) have no data: they must reach the fake kernels
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        y = act(mode.from_tensor(torch.randn(3, 7)))
    assert type(y).__name__ == "FakeTensor" and y.shape == (3, 7)


def test_eager_double_backward_reaches_the_parameters():
    """create_graph=True through the eager path: the second derivative w.r.t. the parameters is the
    reference's (the backward re-packs the saved leaves, not a detached copy)."""
    torch.manual_seed(0)
    act = make("rational", dtype=torch.float64, seed=1, backend="fused")
    ref = make("rational", dtype=torch.float64, seed=1, backend="reference")
    x = torch.randn(40, dtype=torch.float64)
    out = []
    for module in (act, ref):
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(module(xr).pow(2).sum(), xr, create_graph=True)
        out.append(torch.autograd.grad(gx.pow(2).sum(), list(module.parameters())))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b)


def test_auto_uses_fused_on_cpu_and_env_var_forces_reference(monkeypatch):
    x = torch.randn(10, requires_grad=True)
    act = orthoact.Hermite(3)
    assert uses_fused(act(x))
    monkeypatch.setenv("ORTHOACT_BACKEND", "reference")
    assert not uses_fused(act(x))
    # an explicit backend wins over the environment
    assert uses_fused(orthoact.Hermite(3, backend="fused")(x))


def test_auto_falls_back_with_one_warning_when_kernels_are_unavailable(monkeypatch):
    broken = _build.BuildInfo(None, None, False, 0.0, "no C++ compiler found (install g++ or set CXX)")
    monkeypatch.setattr(_build, "_infos", {"hermite": broken})
    monkeypatch.setattr(backends, "_warned", set())
    x = torch.randn(5)
    with pytest.warns(RuntimeWarning, match=re.escape("no fast path for hermite here (fused: no C++ compiler found")):
        y = OF.hermite(x, torch.ones(1, 3))
    torch.testing.assert_close(y, OF.hermite(x, torch.ones(1, 3), backend="reference"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OF.hermite(x, torch.ones(1, 3))  # only once
    with pytest.raises(RuntimeError, match="backend='fused' cannot run hermite on this input: no C\\+\\+ compiler"):
        OF.hermite(x, torch.ones(1, 3), backend="fused")


def test_degree_above_kernel_limit_auto_falls_back_and_explicit_raises(monkeypatch):
    monkeypatch.setattr(backends, "_warned", set())
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    act = orthoact.Hermite(70).double()
    with pytest.warns(RuntimeWarning, match="degree 70 is above the fused kernels' limit of 64"):
        y = act(x)
    torch.testing.assert_close(y, orthoact.functional.hermite(x, act.coefficients, backend="reference"))
    act.backend = "fused"
    with pytest.raises(RuntimeError, match=re.escape("backend='fused' cannot run hermite on this input: degree 70 is "
                                                     "above the fused kernels' limit of 64")):
        act(x)


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_compile_fullgraph(variant):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), make(variant, groups=4, dtype=torch.float32, backend=None), nn.Linear(32, 3))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(5, 8)
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.slow
def test_torch_compile_inductor(monkeypatch):
    monkeypatch.setattr(_build, "_infos", {})  # the kernels get loaded while dynamo traces
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), orthoact.Hermite(3), nn.Linear(32, 8), orthoact.Tropical(5))
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(5, 8)
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()


def _harmonic(groups, dtype, w1, learn=True, **kwargs):
    act = make("fourier", groups=groups, dtype=dtype, seed=7, learn_frequencies=learn, **kwargs)
    with torch.no_grad():  # w_k = k w_1 in every group: the fused kernels' one-sincos recurrence
        act.frequencies.copy_(w1 * torch.arange(1, act.degree + 1, dtype=dtype).expand_as(act.frequencies))
    return act


@pytest.mark.parametrize("learn", [True, False])
@pytest.mark.parametrize("groups,shape,channel_dim", [(1, (4, 2053), -1), (3, (5, 6, 30), 1), (4, (2, 4096), -1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("inputs", [{}, {"domain": (-2.0, 2.5), "clamp": True}, {"domain": (-3.0, 3.0)}])
def test_fused_harmonic_fourier_matches_reference(learn, groups, shape, channel_dim, dtype, inputs):
    """Harmonic frequencies (Fourier(learn_frequencies=False), the paper's init) take one sin/cos per
    element, Horner's rule in z = e^{i theta} forward and the power recurrence backward (the linear
    extension's backward the angle-addition tree): values and every gradient equal to the float64
    reference."""
    act = _harmonic(groups, dtype, 0.7 if learn else 1.0, learn=learn, **inputs)
    torch.manual_seed(1)
    x = (4 * torch.randn(shape)).to(dtype)
    assert_matches_reference(act, x, grad=torch.randn(shape).to(dtype), channel_dim=channel_dim, backend="fused")


@pytest.mark.parametrize("variant", ["fourier", "fourier@fixed", "tropical_rational"])
def test_fused_register_packs_keep_the_nonfinite_rules(variant):
    """The two-register loops (harmonic Fourier rows, TropicalRational's backward: float32, runs of
    one group, no input map) keep the non-finite rules: NaN and +-inf in either register of a pack,
    and in a tail shorter than a pack, give the reference's NaN and inf pattern and its finite values,
    and NaN reaches every parameter gradient of its group only."""
    if variant.startswith("fourier"):
        act = _harmonic(2, torch.float32, 0.7, learn=variant == "fourier")
    else:
        act = make(variant, groups=2, dtype=torch.float32, seed=3)
    torch.manual_seed(0)
    x = 2 * torch.randn(1, 2, 301)  # two runs of 301 (>= 256: the runs layout), each with a tail of 13
    for position, value in ((3, math.nan), (12, math.inf), (20, -math.inf), (295, math.nan), (299, math.inf)):
        x[0, 0, position] = value
    grad = torch.randn_like(x)
    results = {}
    for backend in ("reference", "fused"):
        xx = x.clone().requires_grad_()
        params = [t.detach().clone().requires_grad_(t.requires_grad) for t in act.reference_tensors()]
        y = call(act, xx, params, channel_dim=1, backend=backend)  # (fixed frequencies: their sums skipped)
        y.backward(grad)
        results[backend] = [y.detach(), xx.grad] + [p.grad for p in params]
    names = ["output", "input grad", *act.spec.param_names]
    for name, a, b in zip(names, results["reference"], results["fused"]):
        if a is None:
            assert b is None or not b.abs().sum(), name
            continue
        assert torch.equal(torch.isnan(a), torch.isnan(b)), name
        assert torch.equal(torch.isinf(a), torch.isinf(b)), name
        ok = torch.isfinite(a)
        torch.testing.assert_close(b[ok], a[ok], rtol=1e-4, atol=1e-3, msg=lambda m, name=name: f"{variant} {name}: {m}")
        if name not in ("output", "input grad"):
            assert torch.isnan(a[0]).all() and torch.isfinite(a[1]).all(), name


@pytest.mark.parametrize("variant", [*VARIANTS, "fourier@harmonic", "fourier@fixed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [False, True], ids=["backward", "recompute"])
def test_fused_chunks_with_nonfinite_or_far_inputs_are_computed_again(variant, dtype, value):
    """The runs layout computes each chunk of 8192 elements by the family's fast formula alone and
    computes a chunk again, checked, when one of its inputs was not finite or (Fourier) beyond the
    fast sine's range (kernels.cpp, Clean). Long runs of 3 groups over several chunks, one chunk of
    the first group with a NaN, one of the second with +inf (and, for Fourier, two of the third with
    an input far beyond the range, computed with libm): outputs, input gradients and parameter
    gradients equal the reference's, in the chunks computed again (their sums counted once) and in
    the others, NaN and infinity where the reference has them (the NaN group's gradients). With
    `value`, the recompute path (the value from the backward's own pass); without, also with no
    input gradient wanted (the same parameter gradients). Fourier's rows: any
    frequencies, harmonic ones learned and fixed (each its own fast formula)."""
    if variant.startswith("fourier@"):
        act = _harmonic(3, dtype, 0.7, learn=variant == "fourier@harmonic", channel_dim=1, backend="fused")
    else:
        act = make(variant, groups=3, dtype=dtype, seed=5, channel_dim=1, backend="fused")
    torch.manual_seed(0)
    x = (2 * torch.randn(1, 3, 3 * 8192 + 77, dtype=torch.float64)).to(dtype)
    x[0, 0, 9000] = math.nan
    x[0, 1, 20000] = math.inf
    if variant.startswith("fourier"):
        x[0, 2, 100] = 3e5
        x[0, 2, 17000] = -3e5
    grad = torch.randn_like(x)
    params = list(act.reference_tensors())
    exact = _run_both(act, x.double(), [p.double() for p in params], grad.double(), "reference", value)
    fast = _run_both(act, x, params, grad, "fused", value)
    names = ["output", "input grad", *act.spec.param_names]
    for name, a, b in zip(names, exact, fast):
        if a is None:
            assert b is None or not b.abs().sum(), name
            continue
        b = b.double()
        assert torch.equal(torch.isnan(a), torch.isnan(b)), name
        assert torch.equal(torch.isinf(a), torch.isinf(b)), name
        ok = torch.isfinite(a)
        scale = 1.0 if name in ("output", "input grad") else x.numel() ** 0.5
        tol = 2e-5 * scale if dtype == torch.float32 else 1e-10 * scale
        torch.testing.assert_close(b[ok], a[ok], rtol=tol, atol=tol, msg=lambda m, name=name: f"{variant} {name}: {m}")
        if name not in ("output", "input grad"):
            assert torch.isnan(a[0]).all(), name
    if not value:  # no input gradient wanted (the kernels get no dx): the same parameter gradients
        ps = [t.detach().clone().requires_grad_(t.requires_grad) for t in params]
        call(act, x, ps, channel_dim=1, backend="fused").backward(grad)
        for name, p, b in zip(act.spec.param_names, ps, fast[2:]):
            assert (p.grad is None) == (b is None), name
            if b is not None:
                torch.testing.assert_close(p.grad, b, rtol=0, atol=0, equal_nan=True, msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", ["runs", "rows"])
@pytest.mark.parametrize("clamp", [False, True], ids=["plain", "clamp"])
def test_fused_parameter_gradients_without_an_input_gradient(variant, layout, clamp):
    """With no input gradient wanted the kernels get no dx buffer (their loops write a scratch chunk
    or row instead): the parameter gradients (the clamp limit's too) are bit-equal to those of the same
    call with the input gradient wanted, and match the float64 reference, in both layouts (runs of
    8192 + 77 elements of one group, rows of 3 groups x 7) and with the clamp (the checked loops with
    an input map); so are the value and the gradients of `forward_and_backward` (in long runs without
    an input map, the value from the backward's own pass)."""
    act = make(variant, groups=3, dtype=torch.float32, seed=7, channel_dim=1, backend="fused", clamp=clamp)
    shape = (1, 3, 8192 + 77) if layout == "runs" else (40, 3, 7)
    x = torch.randn(shape)
    grad = torch.randn(shape)
    params = list(act.reference_tensors())
    names = [*act.spec.param_names] + (["clamp_limit"] if clamp else [])
    grads = {}
    for wanted in (True, False):
        xx = x.clone().requires_grad_(wanted)
        ps = [t.detach().clone().requires_grad_(t.requires_grad) for t in params]
        call(act, xx, ps, channel_dim=1, backend="fused").backward(grad)
        assert (xx.grad is not None) == wanted
        grads[wanted] = [p.grad for p in ps]
    for name, a, b in zip(names, grads[True], grads[False], strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert_matches_reference(act, x, grad, channel_dim=1)
    y, dx, dparams = act.forward_and_backward(x, grad)
    y_alone, no_dx, dparams_alone = act.forward_and_backward(x, grad, need_input_grad=False)
    assert dx is not None and no_dx is None
    torch.testing.assert_close(y_alone, y, rtol=0, atol=0)
    for name, a, b in zip(names, dparams, dparams_alone, strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_fused_fourier_parameters_beyond_the_fast_range_on_long_runs():
    """A phase of 9000 (no argument within the fast sine's range: aux -1, a bound below zero) sends
    every chunk of long runs to the checked elements (libm in float64): values and gradients equal the
    reference's, in both groups, forward, backward and the recompute."""
    act = make("fourier", groups=2, dtype=torch.float32, seed=3, channel_dim=1, backend="fused")
    with torch.no_grad():
        act.phases[1, 0] = 9000.0
    torch.manual_seed(2)
    x = (2 * torch.randn(1, 2, 2 * 8192 + 5, dtype=torch.float64)).float()
    grad = torch.randn_like(x)
    assert_matches_reference(act, x, grad, channel_dim=1)
    y, dx, grads = act.forward_and_backward(x, grad)
    assert_matches_reference(act, x, grad, channel_dim=1, fast=[y, dx, *grads])


def _run_both(act, x, params, grad, backend, value):
    """[y, dx, *parameter grads] of ``act`` with ``params`` on ``x`` for ``grad``: autograd, or with
    ``value`` the fused kernels' recompute (the value and the gradients from one backward call)."""
    if value and backend == "fused":  # (params: the module's own)
        y, dx, grads = act.forward_and_backward(x, grad)
        return [y, dx, *grads]
    xx = x.clone().requires_grad_()
    ps = [t.detach().clone().requires_grad_(t.requires_grad) for t in params]
    y = call(act, xx, ps, channel_dim=1, backend=backend)
    y.backward(grad)
    return [y.detach(), xx.grad, *(p.grad for p in ps)]


@pytest.mark.parametrize("degree", [16, 64])
def test_fused_harmonic_fourier_high_degrees_match_reference(degree):
    """The harmonic rows' forward is Horner's rule in z = e^{i theta} and the backward the recurrence
    p_k = p_{k-1} z, n steps deep: at the largest kernel degree the float32 values and gradients
    still match the float64 reference."""
    act = make("fourier", degree, groups=2, dtype=torch.float32, seed=7, learn_frequencies=False)
    torch.manual_seed(1)
    x = 4 * torch.randn(4, 4099)
    assert_matches_reference(act, x, grad=torch.randn_like(x), channel_dim=0, backend="fused")


@pytest.mark.parametrize("harmonic", [True, False])
def test_fused_fourier_skips_the_sums_of_fixed_frequencies(harmonic):
    """Frequencies that need no gradient (learn_frequencies=False, or requires_grad off) may be left out
    of the backward's sums: the 'fixed' mask reaches the kernels eagerly and through the custom op,
    harmonic rows skip them (other rows compute every sum), and every other gradient is bit for bit
    the one computed with the frequencies' sums."""
    act = _harmonic(1, torch.float32, 0.7) if harmonic else make("fourier", dtype=torch.float32, seed=3)
    act.backend = "fused"
    torch.manual_seed(0)
    x, grad = 3 * torch.randn(4099), torch.randn(4099)
    grads = {}
    for learn in (True, False):
        act.frequencies.requires_grad_(learn)
        act.zero_grad()
        act(x).backward(grad)
        grads[learn] = {name: p.grad.clone() for name, p in act.named_parameters() if p.requires_grad}
    assert set(grads[True]) - set(grads[False]) == {"frequencies"}
    for name, g in grads[False].items():
        assert torch.equal(g, grads[True][name]), name
    # the custom op (what torch.compile sees): with the frequencies' bit set their columns stay 0
    from orthoact.ops._common import kernel_code
    from orthoact.ops.fused import fused_backward

    sizes = [t.shape[1] for t in act.tensors()]
    packed = torch.cat([t.detach() for t in act.tensors()], dim=1)
    args = (kernel_code(act.spec, act.options), act.degree, sizes, x.numel(), 1, 0, [])
    columns = slice(1 + act.degree, 1 + 2 * act.degree)
    _, every = fused_backward(grad, x, packed, *args, 0, True, True)
    _, fixed = fused_backward(grad, x, packed, *args, 1 << 2, True, True)
    assert every[:, columns].abs().min() > 0
    assert not fixed[:, columns].any() if harmonic else torch.equal(fixed, every)
    keep = [i for i in range(packed.shape[1]) if not columns.start <= i < columns.stop]
    assert torch.equal(fixed[:, keep], every[:, keep])


def test_the_kernels_receive_the_fixed_mask(monkeypatch):
    """The backward kernel gets bit 2 (the frequencies) exactly when they need no gradient, eagerly and
    through the custom ops (torch.compile), and 0 when every parameter is learned."""
    from orthoact.ops import fused

    seen = []

    class Recorder:
        def __init__(self, lib):
            self.lib = lib

        def oa_forward(self, *args):
            return self.lib.oa_forward(*args)

        def oa_backward(self, *args):
            seen.append(args[-2])  # the skip mask (the value's buffer is last)
            return self.lib.oa_backward(*args)

    library = fused._library
    monkeypatch.setattr(fused, "_library", lambda code: (Recorder(library(code)[0]), library(code)[1]))
    x = torch.randn(3, 40)
    for learn in (False, True):
        act = orthoact.Fourier(4, backend="fused", learn_frequencies=learn)
        for module in (act, torch.compile(act, fullgraph=True, backend="aot_eager")):
            seen.clear()
            module(x.clone().requires_grad_()).sum().backward()
            assert seen == [0 if learn else 1 << 2], (learn, module, seen)
    torch._dynamo.reset()


def test_fused_harmonic_fourier_gradcheck_and_large_arguments():
    act = _harmonic(2, torch.float64, 1.3, domain=(-1.0, 1.5))
    x = (3 * torch.randn(2, 4, 9, dtype=torch.float64)).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in act.reference_tensors()]
    fn = lambda x, *p: call(act, x, p, channel_dim=1, backend="fused")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)
    # beyond |w_n x| = 8192 the lanes go to libm in float64, as in the general form, with the stored
    # float32 w_k = fl(k w_1) (w_1 = 0.7: not k w_1 exactly), in the values and the gradients
    for w1 in (1.0, 0.7):
        act32 = _harmonic(1, torch.float32, w1)
        torch.manual_seed(0)
        x = torch.empty(4099).uniform_(1e4, 1e5) * torch.randn(4099).sign()
        act32.backend = "fused"
        exact = OF.fourier(x.double(), *[p.double() for p in params_of(act32).values()], backend="reference")
        torch.testing.assert_close(act32(x).double(), exact, rtol=1e-5, atol=1e-5)
        assert_matches_reference(act32, x, grad=torch.randn_like(x), backend="fused")
