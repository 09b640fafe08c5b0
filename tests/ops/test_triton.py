"""Triton kernels against the float64 reference, on CPU tensors through the Triton interpreter.

The interpreter runs each program in Python, so blocks are large and sizes small. The kernels are
imported on first use, after the session fixture in conftest.py set TRITON_INTERPRET=1.
"""

import re

import pytest
import torch

import orthoact
import orthoact.functional as OF
from conftest import NO_GPU, VARIANTS, assert_matches_reference, call, make, params_of

pytest.importorskip("triton", reason="triton not installed (pip install 'orthoact[triton]')")
pytestmark = pytest.mark.skipif(not NO_GPU, reason="interpreter tests; tests/ops/test_triton_gpu.py runs on a GPU")

# (shape, groups, channel_dim): one group; long runs of a group (runs layout); short runs, per
# channel with channels last (rows layout); odd sizes throughout.
CASES = [((4097,), 1, -1), ((3, 4, 1031), 2, 1), ((37, 12), 12, -1), ((5, 6, 7), 3, 1)]


def check(module, x, grad, channel_dim):
    assert_matches_reference(module, x, grad, channel_dim, "triton")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-g{c[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_matches_reference(variant, case, dtype):
    shape, groups, channel_dim = case
    module = make(variant, groups=groups, dtype=torch.float32, seed=3)
    torch.manual_seed(4)
    x = (1.5 * torch.randn(shape)).to(dtype)
    grad = torch.randn(shape).to(dtype)
    check(module, x, grad, channel_dim)


@pytest.mark.parametrize("degree", [8, 16, 24, 30])
def test_triton_hermite_high_degree(degree):
    """Regression: the monomial coefficients came from a Vandermonde solve (relative error 525 at
    degree 24); they are now exact."""
    module = make("hermite", degree, dtype=torch.float32, seed=degree)
    torch.manual_seed(0)
    x = torch.randn(4096)
    check(module, x, torch.randn(4096), -1)


@pytest.mark.parametrize("variant", ["hermite", "tropical"])
def test_triton_parameter_only_grad(variant):
    module = make(variant, 7, groups=1, dtype=torch.float32, seed=1)
    params = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    x = torch.randn(3000)
    call(module, x, params, backend="triton").sum().backward()
    ref = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    call(module, x, ref, backend="reference").sum().backward()
    torch.testing.assert_close(params[0].grad, ref[0].grad, rtol=1e-4, atol=1e-3)


def test_triton_declines_float64_and_degree_limit(monkeypatch):
    from orthoact.inputs import InputMap
    from orthoact.ops import triton as triton_path

    spec, plain = orthoact.Hermite.spec, InputMap()
    assert "float64" in triton_path.unavailable_reason(spec, torch.zeros(1, dtype=torch.float64), [torch.ones(1, 3)], 2, {}, plain)
    # float64 parameters need float64 arithmetic too (promotion, as the other backends)
    assert "float64" in triton_path.unavailable_reason(spec, torch.zeros(1), [torch.ones(1, 3, dtype=torch.float64)], 2, {},
                                                       plain)
    assert "limit of 64" in triton_path.unavailable_reason(spec, torch.zeros(1), [torch.ones(1, 71)], 70, {}, plain)
    with pytest.raises(RuntimeError, match=re.escape("backend='triton' cannot run hermite on this input: degree 70 is above")):
        OF.hermite(torch.zeros(3), torch.ones(1, 71), backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "need CUDA" in triton_path.unavailable_reason(spec, torch.zeros(1), [torch.ones(1, 3)], 2, {}, plain)
    with pytest.raises(RuntimeError, match="backend='triton' cannot run hermite on this input"):
        OF.hermite(torch.zeros(3), torch.ones(1, 3), backend="triton")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-g{c[1]}")
def test_triton_recompute_writes_the_value_from_the_backward(variant, case):
    """forward_and_backward (orthoact.nn's recompute MLP): one backward launch writes y too."""
    shape, groups, channel_dim = case
    module = make(variant, groups=groups, dtype=torch.float32, seed=3, channel_dim=channel_dim, backend="triton")
    torch.manual_seed(4)
    x, grad = 1.5 * torch.randn(shape), torch.randn(shape)
    y, dx, grads = module.forward_and_backward(x, grad)
    assert_matches_reference(module, x, grad, channel_dim, "triton", fast=[y, dx, *grads])


@pytest.mark.parametrize("kwargs", [{"domain": (-1.0, 1.5)}, {"clamp": True}], ids=str)
def test_triton_recompute_with_input_maps(kwargs):
    for variant in ("hermite", "fourier", "rational"):
        module = make(variant, dtype=torch.float32, seed=3, backend="triton", **kwargs)
        x, grad = 2 * torch.randn(4097), torch.randn(4097)
        x[7], x[9] = float("nan"), float("inf")
        y, dx, grads = module.forward_and_backward(x, grad)
        ref = module(x)
        assert torch.equal(y.isnan(), ref.isnan())
        torch.testing.assert_close(y.nan_to_num(), ref.nan_to_num(), rtol=1e-5, atol=1e-5)
        xf, gf = x[torch.isfinite(x)], grad[torch.isfinite(x)]
        y, dx, grads = module.forward_and_backward(xf, gf)
        assert_matches_reference(module, xf, gf, -1, "triton", fast=[y, dx, *grads])


def test_triton_recompute_is_one_backward_launch(monkeypatch):
    """The value comes from the backward launch (want_value), with no forward launch."""
    from orthoact.ops import triton as triton_path

    calls = []
    forward, backward = triton_path._forward, triton_path._backward
    monkeypatch.setattr(triton_path, "_forward", lambda *a, **k: calls.append("forward") or forward(*a, **k))
    monkeypatch.setattr(triton_path, "_backward",
                        lambda *a, **k: calls.append(("backward", a[11] if len(a) > 11 else False)) or backward(*a, **k))
    module = make("hermite", dtype=torch.float32, seed=3, backend="triton")
    module.forward_and_backward(torch.randn(4097), torch.randn(4097))
    assert calls == [("backward", True)]
