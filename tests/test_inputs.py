"""Input maps (orthoact.inputs): the linear extension outside a domain and the learnable clamp, in
the formula, the derivative declarations, every backend, fitting, gains, naming and saving."""

import math

import pytest
import torch

import orthoact
from orthoact import declarations
from orthoact.inputs import CLAMP_INIT, parse_domain

DOMAIN_FAMILIES = {"hermite": 5, "fourier": 3, "rational": (5, 4)}
ALL = {**DOMAIN_FAMILIES, "tropical": 4, "tropical_rational": 3}


def _module(family, degree, seed=0, **kwargs):
    torch.manual_seed(seed)
    degrees = dict(zip(("numerator", "denominator"), degree)) if isinstance(degree, tuple) else {"degree": degree}
    module = orthoact.create(family, **degrees, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("family", DOMAIN_FAMILIES)
def test_declared_derivative_is_the_formulas(family):
    spec = declarations.get(family)
    module = _module(family, DOMAIN_FAMILIES[family])
    columns = [[p[0, k] for k in range(p.shape[1])] for p in module.tensors()]
    x = torch.linspace(-4, 4, 301, dtype=torch.float64, requires_grad=True)
    y = spec.evaluate(x, *columns, **module.options)
    (autograd,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(spec.derivative(x.detach(), *columns, **module.options), autograd, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("family", DOMAIN_FAMILIES)
def test_domain_continues_along_the_tangent(family):
    """Inside [lo, hi] the family's formula, outside F(c) + F'(c) (x - c): continuous with a
    continuous derivative at both ends."""
    lo, hi = -2.0, 3.0
    plain = _module(family, DOMAIN_FAMILIES[family])
    extended = _module(family, DOMAIN_FAMILIES[family], domain=(lo, hi))
    extended.load_state_dict(plain.state_dict())
    inside = torch.linspace(lo, hi, 101, dtype=torch.float64)
    torch.testing.assert_close(extended(inside), plain(inside), rtol=0, atol=1e-12)
    for c in (lo, hi):
        at = torch.tensor([c], dtype=torch.float64, requires_grad=True)
        value = plain(at)
        (slope,) = torch.autograd.grad(value.sum(), at)
        away = torch.tensor([c - 7.0 if c == lo else c + 7.0], dtype=torch.float64)
        torch.testing.assert_close(extended(away), value.detach() + slope * (away - c), rtol=1e-12, atol=1e-12)
        # C1: one-sided slopes agree at the end
        eps = 1e-6
        left = (extended(torch.tensor([c], dtype=torch.float64)) - extended(torch.tensor([c - eps], dtype=torch.float64))) / eps
        right = (extended(torch.tensor([c + eps], dtype=torch.float64)) - extended(torch.tensor([c], dtype=torch.float64))) / eps
        torch.testing.assert_close(left, right, rtol=1e-4, atol=1e-4)


def test_clamp_closed_form():
    module = _module("hermite", 3, clamp=True)
    plain = _module("hermite", 3)
    plain.coefficients.data.copy_(module.coefficients.data)
    with torch.no_grad():
        module.clamp_limit.fill_(1.5)
    x = torch.linspace(-30, 30, 401, dtype=torch.float64)
    torch.testing.assert_close(module(x), plain(1.5 * (2 * torch.sigmoid(x) - 1)), rtol=1e-12, atol=1e-12)
    assert orthoact.create("hermite", clamp=True).clamp_limit.item() == pytest.approx(CLAMP_INIT)


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("family", ALL)
@pytest.mark.parametrize("inputs", ["clamp", "domain", "clamp+domain"])
def test_gradcheck_with_input_maps(family, inputs, backend):
    """float64 gradcheck of x, every parameter and the clamp limit, inputs on both sides of the domain."""
    if "domain" in inputs and family not in DOMAIN_FAMILIES:
        pytest.skip("the tropical families take no domain")
    kwargs = {"clamp": "clamp" in inputs, "backend": backend, "groups": 2}
    if "domain" in inputs:
        kwargs["domain"] = (-0.4, 0.5) if "clamp" in inputs else (-1.5, 1.0)
    module = _module(family, ALL[family], **kwargs)
    params = list(module.reference_tensors())
    torch.manual_seed(1)
    x = (2.5 * torch.randn(3, 8, dtype=torch.float64)).requires_grad_()
    spec, options, inputs_map = module.spec, module.options, module.inputs

    def f(x, *ps):
        return orthoact.functional.apply(spec.name, x, *ps[:len(params) - inputs_map.clamp], backend=backend,
                                         domain=inputs_map.domain, clamp_limit=ps[-1] if inputs_map.clamp else None,
                                         **options)

    assert torch.autograd.gradcheck(f, (x, *[p.detach().requires_grad_() for p in params]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("family", DOMAIN_FAMILIES)
def test_fused_float32_matches_float64_reference(family):
    from conftest import assert_matches_reference

    module = _module(family, DOMAIN_FAMILIES[family], domain=(-2.5, 2.5), clamp=True).float()
    x = 6 * torch.randn(4, 999)
    assert_matches_reference(module, x, grad=torch.randn_like(x), backend="fused")


def test_fast_path_saves_only_x():
    """With a domain and a clamp the fused path keeps GELU's memory: x (and the parameters) only."""
    module = orthoact.create("hermite", degree=8, domain=(-3, 3), clamp=True, backend="fused")
    x = torch.randn(64, 1024, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    activations = [t for t in saved if t.numel() >= x.numel()]
    assert sum(t.numel() * t.element_size() for t in activations) == x.numel() * x.element_size()


def test_names_repr_state_dict_and_errors():
    module = orthoact.create("hermite:8(domain=-3:3)")
    assert module.domain == (-3.0, 3.0) and "domain=(-3, 3)" in repr(module)
    assert orthoact.create("hermite:3(clamp=true)").clamp
    clamped = orthoact.create("hermite", degree=3, clamp=True, domain=(-1, 1))
    assert "clamp=True" in repr(clamped) and set(clamped.state_dict()) == {"coefficients", "clamp_limit"}
    again = orthoact.create("hermite", **{k: v for k, v in clamped.config().items() if k != "family"})
    again.load_state_dict(clamped.state_dict())
    x = torch.randn(100) * 4
    torch.testing.assert_close(again(x), clamped(x))
    assert parse_domain("-2:3.5") == (-2.0, 3.5) and parse_domain(None) is None
    with pytest.raises(ValueError, match="domain must be a finite interval with low < high, got"):
        orthoact.create("hermite", domain=(3, -3))
    with pytest.raises(ValueError, match="domain must be None, a pair"):
        orthoact.create("hermite", domain="wide")
    with pytest.raises(ValueError, match="domain is not available for tropical"):
        orthoact.create("tropical", domain=(-3, 3))
    with pytest.raises(TypeError, match="clamp must be a bool, got 'yes'"):
        orthoact.create("hermite", clamp="yes")


def test_fit_with_domain_extends_linearly():
    module, report = orthoact.fit("gelu", "hermite", 8, domain=(-3, 3), extend=True)
    assert module.domain == (-3.0, 3.0) and report.max_error < 1e-2
    x = torch.tensor([6.0, 20.0])
    # beyond the domain GELU is about x; the tangent at 3 (slope GELU'(3) = 1.012) follows it closely
    torch.testing.assert_close(module(x), torch.nn.functional.gelu(x), atol=0.05, rtol=0.01)
    clamped, report = orthoact.fit("gelu", "hermite", 8, clamp=True)
    assert clamped.clamp and report.rms_error < 0.05


def test_gains_with_a_domain_match_monte_carlo():
    module = orthoact.create("hermite", degree=5, domain=(-2, 2), clamp=True, dtype=torch.float64)
    f2, d2 = (g.item() for g in module.gains())
    torch.manual_seed(0)
    x = torch.randn(2_000_000, dtype=torch.float64, requires_grad=True)
    y = module(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert f2 == pytest.approx((y.detach() ** 2).mean().item(), rel=5e-3)
    assert d2 == pytest.approx((dy ** 2).mean().item(), rel=5e-3)
    assert math.isfinite(f2)


def test_to_polynomial_refuses_a_domain():
    from orthoact.analysis.polynomial import to_polynomial

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), orthoact.create("hermite", degree=3, domain=(-3, 3)))
    with pytest.raises(ValueError, match="domain"):
        to_polynomial(model)
