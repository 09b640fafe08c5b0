"""A family is one declaration: a throwaway family declared here works end to end (module by name,
forward, backward, fit, gains) on the reference, without kernels; one whose kernels fail to build
falls back alone while the others keep theirs."""

import math
import warnings

import pytest
import torch
from torch import nn

import orthoact
from orthoact import backends, declarations
from orthoact.activation import BasisActivation
from orthoact.declarations import FamilySpec, KernelSpec, ParamSpec
from orthoact.ops import _build


def _gains(coefficients):
    # F = a x + b x^2 / 2 for x ~ N(0, 1): E[F^2] = a^2 + 3 b^2 / 4, E[F'^2] = a^2 + b^2
    a, b = coefficients[:, 0].double(), coefficients[:, 1].double()
    return a**2 + 0.75 * b**2, a**2 + b**2


def _fit_start(x, w, f, df, degree, match_derivative):
    rows = torch.stack([x, 0.5 * x**2], -1)
    if match_derivative:
        rows, f = torch.cat([rows, torch.stack([torch.ones_like(x), x], -1)]), torch.cat([f, df])
    return {"coefficients": torch.linalg.lstsq(rows, f.unsqueeze(-1)).solution.squeeze(-1)}


def _spec(name: str, kernels=None) -> FamilySpec:
    return FamilySpec(
        name=name,
        params=(ParamSpec("coefficients", lambda n: 2),),
        default_degree=2,
        evaluate=lambda x, c: c[0] * x + 0.5 * c[1] * x * x,
        degree_of=lambda columns: 2,
        gains=_gains,
        inits={"paper": lambda n: {"coefficients": [1.0, 0.0]}},
        fit_start=_fit_start,
        kernels=kernels,
        formula="F(x) = a x + b x^2 / 2",
    )


@pytest.fixture
def quadratic():
    declarations.declare(_spec("quadratic"))

    class Quadratic(BasisActivation):
        spec = declarations.get("quadratic")

    yield Quadratic
    declarations.undeclare("quadratic")


def test_a_declared_family_works_everywhere(quadratic, monkeypatch):
    monkeypatch.setattr(backends, "_warned", set())
    assert "quadratic" in orthoact.family_names() and "quadratic" in orthoact.available()
    act = orthoact.create("quadratic:2(groups=2)")
    assert isinstance(act, quadratic) and repr(act) == "Quadratic(degree=2, groups=2)"
    with torch.no_grad():
        act.coefficients.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="no fast path for quadratic here \\(fused: quadratic declares no C\\+\\+ kernels"):
        y = act(x)
    a = torch.tensor([1.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    b = torch.tensor([2.0, 2.0, -1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(y, a * x + 0.5 * b * x * x)  # float64 input: computed in float64
    y.sum().backward()
    torch.testing.assert_close(x.grad, (a + b * x).detach())
    assert act.coefficients.grad.shape == (2, 2)
    with pytest.raises(RuntimeError, match="backend='fused' cannot run quadratic on this input: quadratic declares no C"):
        act.backend = "fused"
        act(x)
    forward, backward = act.gains()
    torch.testing.assert_close(forward, torch.tensor([1 + 3.0, 0.25 + 0.75], dtype=torch.float64))
    module, report = orthoact.fit("gelu", "quadratic")  # gelu = x/2 + x^2/sqrt(2 pi) + O(x^4)
    assert isinstance(module, quadratic) and report.max_error < 0.1 and math.isfinite(report.rms_error)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 16), orthoact.create("quadratic"), nn.Linear(16, 1))
    opt = torch.optim.Adam(mlp.parameters(), lr=0.02)
    data = torch.randn(64, 4)
    target = data[:, :1] ** 2
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(30):
            loss = (mlp(data) - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_family_whose_kernels_fail_to_build_falls_back_alone(tmp_path, monkeypatch):
    broken = tmp_path / "broken.h"
    broken.write_text("#pragma once\nthis is not C++;\n")
    declarations.declare(_spec("broken_quadratic", kernels=lambda: KernelSpec(str(broken), "BrokenF", None)))
    try:
        monkeypatch.setattr(backends, "_warned", set())
        kernels = _build.load()
        assert kernels.families["broken_quadratic"].library is None
        assert "broken_quadratic: compiling the fused kernels failed" in kernels.error
        assert all(kernels.families[n].library is not None for n in ("hermite", "tropical", "rational"))
        x = torch.randn(100, requires_grad=True)
        assert "fused_forward" in type(orthoact.Hermite(3)(x).grad_fn).__name__  # the others keep their kernels
        y = orthoact.functional.apply("broken_quadratic", x, torch.tensor([[1.0, 2.0]]), backend=None)
        torch.testing.assert_close(y, x + x * x)
    finally:
        declarations.undeclare("broken_quadratic")
        _build._infos.pop("broken_quadratic", None)
