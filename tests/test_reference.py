"""The rules of the reference that every backend follows: non-finite inputs, dtype promotion."""

import importlib.util
import math

import pytest
import torch

from conftest import NO_GPU, VARIANTS, call, make

BACKENDS = ["reference", "fused"] + (["triton"] if importlib.util.find_spec("triton") and NO_GPU else [])
NAN, INF = math.nan, math.inf


def run(module, x, backend):
    xx = x.clone().requires_grad_()
    params = [t.detach().clone().requires_grad_() for t in module.tensors()]
    y = call(module, xx, params, channel_dim=1, backend=backend)
    y.backward(torch.ones_like(y))
    return [y.detach(), xx.grad] + [p.grad for p in params]


def nonfinite_input():
    """Two groups of 12 channels: group 0 holds a NaN, +inf and -inf; group 1 is finite."""
    x = torch.linspace(-2, 2, 24).reshape(1, 24)
    x[0, 1], x[0, 5], x[0, 9] = NAN, INF, -INF
    return x


@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_input_is_never_hidden(variant):
    """NaN input: NaN output, NaN input gradient, NaN in every parameter gradient of its group and
    nowhere else."""
    module = make(variant, groups=2, dtype=torch.float32)
    x = torch.linspace(-2, 2, 24).reshape(1, 24)
    x[0, 3] = NAN
    y, dx, *grads = run(module, x, "reference")
    assert math.isnan(y[0, 3]) and math.isnan(dx[0, 3])
    finite = torch.ones(24, dtype=torch.bool)
    finite[3] = False
    assert torch.isfinite(y[0, finite]).all() and torch.isfinite(dx[0, finite]).all()
    for g in grads:
        if g is None:  # a fixed buffer
            continue
        assert torch.isnan(g[0]).all(), (variant, g)  # every parameter of the NaN's group
        assert torch.isfinite(g[1]).all(), (variant, g)  # and no other group


@pytest.mark.parametrize("variant", VARIANTS)
def test_infinities_follow_the_family_rule(variant):
    module = make(variant, dtype=torch.float32)
    y, dx, *_ = run(module, torch.tensor([[INF, -INF]]), "reference")
    if module.spec.nan_at_infinity:  # polynomials, Fourier and rational functions: no value at infinity
        assert torch.isnan(y).all() and torch.isnan(dx).all()
    elif module.family == "tropical":  # +inf at +inf, the constant piece at -inf
        assert y[0, 0].item() == INF
        assert y[0, 1].item() == pytest.approx(math.sqrt(2) / module.degree * module.offsets[0, 0].item())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nonfinite_inputs_are_the_same_on_every_backend(variant, backend, dtype):
    """Regression: Tropical x=NaN gave an offset a finite gradient on the fused path, TropicalRational
    x=+-inf gave dx=-0.5 fused vs 0 reference, Hermite +-inf gave +-inf fused vs NaN reference."""
    module = make(variant, groups=2, dtype=torch.float32, seed=3)
    if module.family == "tropical_rational":  # a zero slope makes 0 * inf = NaN pieces: the max's NaN rule
        with torch.no_grad():
            module.slopes_num[0, 2] = 0.0
            module.slopes_den[1, 0] = 0.0
    x = nonfinite_input().to(dtype)
    ref = run(module, x.float(), "reference")
    fast = run(module, x, backend)
    names = ["output", "input grad"] + list(module.spec.param_names)
    for name, a, b in zip(names, ref, fast):
        if a is None:
            continue
        b = b.float()
        assert torch.equal(torch.isnan(a), torch.isnan(b)), (name, a, b)
        assert torch.equal(torch.isinf(a), torch.isinf(b)), (name, a, b)
        ok = torch.isfinite(a)
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
        torch.testing.assert_close(b[ok], a[ok], rtol=tol, atol=tol * 12, msg=lambda m, name=name: f"{variant} {name}: {m}")


@pytest.mark.parametrize("dtype, param_dtype, compute", [
    (torch.float32, torch.float64, torch.float64),
    (torch.bfloat16, torch.float32, torch.float32),
    (torch.float16, torch.float16, torch.float32),
    (torch.float64, torch.bfloat16, torch.float64),
])
def test_promotion_rule(dtype, param_dtype, compute):
    """The arithmetic runs in the promoted dtype (at least float32), the output keeps the input's dtype
    and each parameter gradient its parameter's."""
    from orthoact.reference import compute_dtype

    module = make("hermite", dtype=param_dtype)
    x = torch.randn(5, dtype=dtype)
    assert compute_dtype(x, *module.tensors()) == compute
    y, dx, grad = run(module, x, "reference")
    assert y.dtype == dtype and dx.dtype == dtype and grad.dtype == param_dtype
