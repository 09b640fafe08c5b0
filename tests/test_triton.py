"""Triton kernels against the reference, on CPU tensors through the Triton interpreter.

The interpreter runs each program in Python, so blocks are large and sizes small. The kernels are
imported on first use, after TRITON_INTERPRET=1 is set here.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import orthoact.functional as OF  # noqa: E402
from conftest import FAMILIES, make, params_of  # noqa: E402

pytest.importorskip("triton", reason="triton not installed (pip install 'orthoact[triton]')")

FUNCS = {"hermite": OF.hermite, "fourier": OF.fourier, "tropical": OF.tropical, "tropical_rational": OF.tropical_rational}
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.bfloat16: dict(rtol=1.6e-2, atol=2e-2)}
# (shape, groups, channel_dim): one group; long runs of a group (runs layout); short runs, per
# channel with channels last (rows layout); odd sizes throughout.
CASES = [((4097,), 1, -1), ((3, 4, 1031), 2, 1), ((37, 12), 12, -1), ((5, 6, 7), 3, 1)]


def run(family, backend, x, params, channel_dim, grad):
    xx = x.clone().requires_grad_()
    ps = [p.detach().clone().requires_grad_() for p in params]
    y = FUNCS[family](xx, *ps, channel_dim=channel_dim, backend=backend)
    y.backward(grad)
    return [y.detach(), xx.grad] + [p.grad for p in ps]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-g{c[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_matches_reference(family, case, dtype):
    shape, groups, channel_dim = case
    module = make(family, groups=groups, dtype=torch.float32, seed=3)
    params = list(params_of(module).values())
    torch.manual_seed(4)
    x = (1.5 * torch.randn(shape)).to(dtype)
    grad = torch.randn(shape).to(dtype)
    ref = run(family, "reference", x, params, channel_dim, grad)
    tri = run(family, "triton", x, params, channel_dim, grad)
    assert tri[0].dtype == dtype and tri[1].dtype == dtype
    names = ["output", "input grad"] + [f"grad of {n}" for n in params_of(module)]
    for name, a, b in zip(names, ref, tri):
        scale = 1.0 if name in ("output", "input grad") else max(1.0, x.numel() ** 0.5)
        tol = {k: v * scale for k, v in TOL[dtype].items()}
        torch.testing.assert_close(b.double(), a.double(), **tol, msg=lambda m: f"{family} {name}: {m}")


@pytest.mark.parametrize("family", ["hermite", "tropical"])
def test_triton_higher_degree_and_parameter_only_grad(family):
    module = make(family, 7, groups=1, dtype=torch.float32, seed=1)
    params = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    x = torch.randn(3000)
    y = FUNCS[family](x, *params, backend="triton")
    y.sum().backward()
    ref = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    FUNCS[family](x, *ref, backend="reference").sum().backward()
    torch.testing.assert_close(params[0].grad, ref[0].grad, rtol=1e-4, atol=1e-3)


def test_triton_unavailable_without_interpreter(monkeypatch):
    from orthoact.ops import triton as triton_path

    assert "float64" in triton_path.unavailable_reason(torch.zeros(1, dtype=torch.float64))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "need CUDA" in triton_path.unavailable_reason(torch.zeros(1))
    with pytest.raises(RuntimeError, match="backend='triton' cannot run hermite on this input"):
        OF.hermite(torch.zeros(3), torch.ones(1, 3), backend="triton")
