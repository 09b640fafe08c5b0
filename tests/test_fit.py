import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import orthoact
from orthoact.fit import TARGETS


def independent_errors(module, fn, lo, hi, n=20001):
    """Max |F - f| and max |F' - f'| on a fresh grid, derivatives by finite differences."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    module = module.double()
    y, f = module(x).detach(), fn(x)
    h = 1e-6
    dy = (module(x + h) - module(x - h)).detach() / (2 * h)
    df = (fn(x + h) - fn(x - h)) / (2 * h)
    return (y - f).abs().max().item(), (dy - df).abs().max().item()


@pytest.mark.parametrize("family, degrees",
                         [("hermite", [3, 5, 8]), ("fourier", [3, 5]), ("tropical", [3, 5]), ("tropical_rational", [3, 5])])
@pytest.mark.parametrize("target", ["gelu", "silu", "tanh"])
def test_fit_report_agrees_with_independent_evaluation(family, degrees, target):
    for degree in degrees:
        module, report = orthoact.fit(target, family, degree)
        lo, hi = report.domain
        assert (lo, hi) == pytest.approx((-math.sqrt(degree), math.sqrt(degree)))
        err, derr = independent_errors(module, TARGETS[target], lo, hi)
        assert report.max_error == pytest.approx(err, rel=0.05, abs=1e-6)
        if family in ("hermite", "fourier"):  # smooth: finite differences are exact enough
            assert report.max_derivative_error == pytest.approx(derr, rel=0.05, abs=1e-5)
        assert report.rms_error <= report.max_error
        # a fit is a fit: far better than the paper's init on the same domain
        init_err, _ = independent_errors(orthoact.create(family, degree=degree), TARGETS[target], lo, hi)
        assert report.max_error < init_err


def test_hermite_8_gelu_target():
    module, report = orthoact.fit("gelu", "hermite", 8)
    assert report.max_error <= 2e-3
    assert isinstance(module, orthoact.Hermite) and module.coefficients.dtype == torch.float32


def test_hermite_errors_decrease_with_degree():
    errors = [orthoact.fit("gelu", "hermite", d, domain=(-3, 3))[1].max_error for d in (2, 4, 6, 8, 10)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("family", ["hermite", "fourier"])
def test_least_squares_is_deterministic(family):
    a, _ = orthoact.fit("silu", family, 5, learn_frequencies=False) if family == "fourier" else orthoact.fit("silu", family, 5)
    b, _ = orthoact.fit("silu", family, 5, learn_frequencies=False) if family == "fourier" else orthoact.fit("silu", family, 5)
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), na


def test_fourier_learned_frequencies_refine_the_linear_fit():
    _, fixed = orthoact.fit("gelu", "fourier", 5, learn_frequencies=False)
    module, learned = orthoact.fit("gelu", "fourier", 5)
    assert learned.max_error < fixed.max_error
    assert module.frequencies.requires_grad


def test_tropical_rational_follows_gelu_on_a_wide_range():
    _, report = orthoact.fit("gelu", "tropical_rational", 6, domain=(-8, 8))
    assert report.max_error < 0.08


@pytest.mark.parametrize("version", ["A", "B"])
def test_rational_fits_gelu_closely_on_pau_s_range(version):
    module, report = orthoact.fit("gelu", "rational", (5, 4), version=version)
    assert report.domain == (-3.0, 3.0)
    assert report.max_error < 3e-3 and report.max_derivative_error < 2e-2, report
    err, _ = independent_errors(module, F.gelu, -3, 3)
    assert report.max_error == pytest.approx(err, rel=0.05, abs=1e-6)
    assert isinstance(module, orthoact.Rational) and module.options["version"] == version
    # a rational function keeps following GELU beyond the fitted range far better than a polynomial
    poly, _ = orthoact.fit("gelu", "hermite", 5, domain=(-3, 3))
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    assert (module.double()(x) - F.gelu(x)).abs().max() < (poly.double()(x) - F.gelu(x)).abs().max()


@pytest.mark.parametrize("degree", [21, 30, 64, 100])
def test_fourier_high_degrees_work_everywhere(degree, capsys):
    """Regression: k! as an int64 overflowed from degree 21 (reference, double backward, fit, CLI)."""
    act = orthoact.Fourier(degree, dtype=torch.float64)
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    for backend in ("reference", None):
        act.backend = backend
        y = act(x)
        (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)  # double backward: the reference formulas
        (ddx,) = torch.autograd.grad(dx.sum(), x)
        assert torch.isfinite(y).all() and torch.isfinite(dx).all() and torch.isfinite(ddx).all()
    module, report = orthoact.fit("gelu", "fourier", degree)
    # (the default domain [-sqrt n, sqrt n] is longer than the period 2 pi of the fixed harmonics, so
    # the fit is poor at high degree; what matters here is that it runs and stays finite)
    assert all(torch.isfinite(t).all() for t in module.tensors()) and math.isfinite(report.max_error)
    from orthoact.cli import main

    assert main(["fit", "gelu", "--family", "fourier", "--degree", str(degree), "--fixed-frequencies"]) == 0
    assert f"fourier-{degree} fit of gelu" in capsys.readouterr().out


def test_fit_on_recorded_samples_and_weights():
    torch.manual_seed(0)
    samples = torch.randn(50_000) * 3 + 1
    module, report = orthoact.fit("gelu", "hermite", 6, samples=samples)
    assert report.evaluated_on == "samples"
    assert report.domain == pytest.approx((samples.min().item(), samples.max().item()))
    # weighting by density: better where the samples are than a uniform fit of the same range
    _, uniform = orthoact.fit("gelu", "hermite", 6, domain=report.domain)
    x = torch.randn(20_000, dtype=torch.float64) * 3 + 1
    dense = (module.double()(x) - F.gelu(x)).square().mean()
    uniform_module = orthoact.fit("gelu", "hermite", 6, domain=report.domain)[0].double()
    assert dense < (uniform_module(x) - F.gelu(x)).square().mean()
    weighted, _ = orthoact.fit("gelu", "hermite", 4, weights=lambda x: torch.exp(-x**2))
    assert isinstance(weighted, orthoact.Hermite)


def test_fit_callable_and_module_targets():
    _, by_fn = orthoact.fit(lambda x: x * torch.sigmoid(1.702 * x), "hermite", 6)
    _, by_module = orthoact.fit(nn.SiLU(), "hermite", 6)
    _, by_name = orthoact.fit("silu", "hermite", 6)
    assert by_module.max_error == pytest.approx(by_name.max_error)
    assert by_fn.max_error < 0.05


def test_init_by_name():
    a = orthoact.Hermite(8, init="gelu", groups=2)
    fitted, _ = orthoact.fit("gelu", "hermite", 8)
    torch.testing.assert_close(a.coefficients, fitted.coefficients.expand(2, -1))
    assert repr(a) == "Hermite(degree=8, groups=2, init='gelu')"
    x = torch.linspace(-2, 2, 101)
    assert (orthoact.Tropical(5, init="relu")(x) - F.relu(x)).abs().max() < 0.2
    assert (orthoact.Fourier(5, init="tanh")(x) - torch.tanh(x)).abs().max() < 0.01


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: orthoact.fit("swishy", "hermite", 3), ValueError, "unknown target activation 'swishy'; known: gelu"),
        (lambda: orthoact.fit("gelu", "hermite", 0), ValueError, "degree must be a positive int, got 0"),
        (lambda: orthoact.fit("gelu", "legendre", 3), ValueError, "family must be one of"),
        (lambda: orthoact.fit("gelu", "hermite", 3, domain=(2, 1)), ValueError, "low < high"),
        (lambda: orthoact.fit("gelu", "hermite", 3, samples=torch.tensor([math.nan])), ValueError, "at least one finite value"),
        (lambda: orthoact.fit(3.0, "hermite", 3), TypeError, "target must be an activation name"),
        (lambda: orthoact.fit("gelu", "hermite", 3, weights=torch.ones(5)), ValueError, "one value per sample point"),
        (lambda: orthoact.Hermite(3, init="swish"), ValueError, "init must be one of 'paper', 'unit', 'gelu'"),
    ],
)
def test_fit_bad_input(call, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_fit_based_inits_work_without_gradients():
    """Regression: inits that refine (the rational's default GELU fit) failed under no_grad, where
    reset_parameters and model-building code usually run."""
    with torch.no_grad():
        rational = orthoact.create("rational:3/2")
        tropical = orthoact.create("tropical:5(init=gelu)")
    with torch.inference_mode():
        _, report = orthoact.fit("gelu", "fourier", 3)
    assert rational.numerator.requires_grad and tropical.offsets.requires_grad and report.max_error < 0.01
