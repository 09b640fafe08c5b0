"""``forward_and_backward``: the value and the first derivatives from one call (what orthoact.nn's MLP
recomputes in its backward), against the float64 reference and against the separate forward and
backward, on the fused kernels (the backward's own pass writes the value in the runs layout without
an input map; other rows run the forward first in the same call) and through autograd on the
reference (the Triton kernels' in tests/ops/test_triton.py)."""

import itertools

import pytest
import torch

import orthoact
from conftest import TOL, VARIANTS, assert_matches_reference, make, spec_of
from orthoact.ops import fused

# (shape, groups, channel_dim): one long run (the value from the backward's own pass), long runs of 2
# groups, short runs (rows layout: the forward first), a tail shorter than a vector.
CASES = [((3, 1000), 1, -1), ((4, 2, 300), 2, 1), ((5, 6, 7), 3, 1), ((13,), 1, -1)]


def run_recompute(module, x, grad, need_input_grad=True):
    y, dx, grads = module.forward_and_backward(x, grad, need_input_grad=need_input_grad)
    return [y, dx, *grads]


def separate(module, x, grad):
    """The module's forward, then its backward (autograd), on copies of its tensors."""
    xx = x.clone().requires_grad_()
    ps = [p.detach().clone().requires_grad_(p.requires_grad) for p in module.reference_tensors()]
    from conftest import call

    y = call(module, xx, ps, channel_dim=module.channel_dim, backend=module.backend)
    y.backward(grad)
    return [y.detach(), xx.grad, *(p.grad for p in ps)]


@pytest.mark.parametrize("variant", [*VARIANTS, "fourier@learn_frequencies=False"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-g{c[1]}")
@pytest.mark.parametrize("dtype, param_dtype", [(torch.float32, torch.float32), (torch.float64, torch.float64),
                                                (torch.bfloat16, torch.float32), (torch.float16, torch.float32),
                                                (torch.float32, torch.float64)], ids=str)
def test_recompute_matches_reference(variant, case, dtype, param_dtype):
    shape, groups, channel_dim = case
    name, _, option = variant.partition("@learn_frequencies=")
    extra = {"learn_frequencies": False} if option else {}
    module = make(name, groups=groups, dtype=param_dtype, channel_dim=channel_dim, backend="fused", **extra)
    torch.manual_seed(1)
    x = (2 * torch.randn(shape, dtype=torch.float64)).to(dtype)
    grad = torch.randn(shape, dtype=torch.float64).to(dtype)
    out = run_recompute(module, x, grad)
    if extra:  # the fixed frequencies get no gradient, the others the same as when they get one
        k = 2 + module.spec.param_names.index("frequencies")
        assert out[k] is None
        module.frequencies.requires_grad_(True)
        full = run_recompute(module, x, grad)  # (another loop: the forward, then the backward)
        for a, b in zip(out[:k] + out[k + 1:], full[:k] + full[k + 1:]):
            torch.testing.assert_close(a, b, **TOL[a.dtype])
        out = full
    assert all(g is not None for g in out)
    assert_matches_reference(module, x, grad, channel_dim, fast=out)


@pytest.mark.parametrize("learn", [True, False])
@pytest.mark.parametrize("degree", [1, 2, 3, 5, 8, 10, 11, 20])
def test_fourier_value_from_the_backward_equals_the_forward(learn, degree):
    """Every compiled degree (1-10 specialised, the others generic), float32 and float64, with a few
    lanes beyond the fast sine's range (computed with libm), then with NaN / +-inf inputs too: the
    value equals the forward's, the gradients the separate backward's."""
    for dtype, nonfinite in itertools.product((torch.float32, torch.float64), (False, True)):
        module = make("fourier", degree, dtype=dtype, seed=degree, backend="fused", learn_frequencies=learn)
        torch.manual_seed(degree)
        x = 3 * torch.randn(4099, dtype=dtype)
        x[100:104] = torch.tensor([5e4, -7e4, 1e6, 3e3], dtype=dtype)  # libm lanes
        if nonfinite:
            x[2000], x[2001], x[2002] = float("nan"), float("inf"), float("-inf")
        grad = torch.randn_like(x)
        got, want = run_recompute(module, x, grad), separate(module, x, grad)
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
        for name, a, b in zip(["value", "input grad", *module.spec.param_names], got, want):
            if b is None:
                assert a is None, name
                continue
            b = b.to(a.dtype)
            if name not in ("value", "input grad"):  # sums over every element (NaN from a NaN input)
                if nonfinite:
                    assert a.isnan().all() and b.isnan().all(), name
                else:  # (the libm lanes' terms are up to 1e6 |c| |w|)
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3 if dtype == torch.float32 else 1e-8,
                                               msg=lambda m, n=name: f"{n}: {m}")
                continue
            assert torch.equal(a.isnan(), b.isnan()), name
            a, b = a.nan_to_num(), b.nan_to_num()
            torch.testing.assert_close(a[104:], b[104:], **tol, msg=lambda m, n=name: f"{n}: {m}")
            # the libm lanes: arguments up to 1e6 |w|, rounded with or without a fused multiply-add
            torch.testing.assert_close(a[:104], b[:104], rtol=1e-9, atol=1e-9 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("degree", [1, 2, 5, 8, 10, 11, 20, (5, 2)], ids=str)
def test_value_from_every_family_backward_at_every_compiled_degree(variant, degree):
    """One long run (the value from the backward's own pass): degrees 1-10 specialised in float32
    (TropicalRational from degree 8 without its slope lookup, a rational 5/2 without the m/(m-1)
    shape's own code), 11 and 20 generic, and float64."""
    if isinstance(degree, tuple) and len(spec_of(variant).degree_args) != 2:
        pytest.skip("one degree")
    for dtype in (torch.float32, torch.float64):
        module = make(variant, degree, dtype=dtype, seed=3, backend="fused")
        torch.manual_seed(4)
        x, grad = torch.randn(4099, dtype=dtype), torch.randn(4099, dtype=dtype)
        assert_matches_reference(module, x, grad, -1, fast=run_recompute(module, x, grad))


@pytest.mark.parametrize("variant", VARIANTS)
def test_recompute_nonfinite_inputs_follow_the_forward_and_backward(variant):
    module = make(variant, groups=2, dtype=torch.float32, channel_dim=0, backend="fused")
    x = torch.randn(2, 700)
    x[0, 3], x[0, 500], x[0, 600] = float("nan"), float("inf"), float("-inf")
    grad = torch.randn_like(x)
    got, want = run_recompute(module, x, grad), separate(module, x, grad)
    for a, b in zip(got, want):
        assert torch.equal(a.isnan(), b.isnan())
        torch.testing.assert_close(a.nan_to_num(), b.nan_to_num(), rtol=1e-5, atol=1e-5)


def test_recompute_on_the_reference_backend_and_without_the_input_gradient():
    """A backend without its own recompute runs the forward, then the backward (autograd)."""
    module = make("hermite", groups=2, channel_dim=1)
    x, grad = torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(3, 4, 5, dtype=torch.float64)
    assert_matches_reference(module, x, grad, 1, "reference", fast=run_recompute(module, x, grad))
    module.backend = "fused"
    y, dx, grads = module.forward_and_backward(x, grad, need_input_grad=False)
    assert dx is None and all(g is not None for g in grads)
    torch.testing.assert_close(y, module(x))


def test_recompute_frozen_and_harmonic_learned_frequencies():
    """Learned frequencies still at the paper's harmonic init (their rows' value: the forward first),
    and the same activation frozen (every parameter without a gradient: the fixed frequencies' pass)."""
    for frozen in (False, True):
        module = make("fourier", dtype=torch.float32, backend="fused", random=False)
        module.requires_grad_(not frozen)
        x, grad = 3 * torch.randn(2, 1000), torch.randn(2, 1000)
        y, dx, grads = module.forward_and_backward(x, grad)
        if frozen:
            assert all(g is None for g in grads)
            module.requires_grad_(True)
            grads = module.forward_and_backward(x, grad)[2]  # (for the comparison below)
            torch.testing.assert_close((y, dx), module.forward_and_backward(x, grad)[:2], rtol=1e-5, atol=1e-5)
        assert_matches_reference(module, x, grad, -1, fast=[y, dx, *grads])


def test_recompute_clamp_and_domain():
    for kwargs in ({"clamp": True}, {"domain": (-1.5, 2.0)}):
        module = make("fourier", dtype=torch.float32, backend="fused", **kwargs)
        x, grad = 3 * torch.randn(2, 1000), torch.randn(2, 1000)
        out = run_recompute(module, x, grad)
        assert_matches_reference(module, x, grad, -1, fast=out)


def test_recompute_bad_gradient_shape():
    module = orthoact.Hermite(3)
    with pytest.raises(ValueError, match=r"grad must have the input's shape \(4, 5\), got \(5,\)"):
        module.forward_and_backward(torch.randn(4, 5), torch.randn(5))


@pytest.mark.parametrize("learn", [True, False])
def test_the_mlp_backward_makes_one_kernel_call(monkeypatch, learn):
    """The MLP's backward gets the activation's value and gradients from one backward call with the
    value buffer, and calls no forward kernel (Fourier, one group)."""
    from orthoact.nn import MLP

    calls = []

    class Recorder:
        def __init__(self, lib):
            self.lib = lib

        def oa_forward(self, *args):
            calls.append("forward")
            return self.lib.oa_forward(*args)

        def oa_backward(self, *args):
            calls.append(("backward", args[-1] is not None))  # the value's buffer is last
            return self.lib.oa_backward(*args)

    library = fused._library
    monkeypatch.setattr(fused, "_library", lambda code: (Recorder(library(code)[0]), library(code)[1]))
    block = MLP(16, 64, act=lambda: make("fourier", dtype=torch.float32, backend="fused", learn_frequencies=learn))
    y = block(torch.randn(8, 16))
    assert calls == ["forward"]
    y.sum().backward()
    assert calls == ["forward", ("backward", True)]
    assert all(p.grad is not None for p in block.parameters())
