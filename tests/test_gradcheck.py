"""float64 gradcheck (and gradgradcheck for the smooth families) w.r.t. the input and every parameter."""

import pytest
import torch

import orthoact.functional as OF
from conftest import FAMILIES, make, params_of

FUNCS = {"hermite": OF.hermite, "fourier": OF.fourier, "tropical": OF.tropical, "tropical_rational": OF.tropical_rational}


def inputs(family, groups, seed=0):
    module = make(family, groups=groups, seed=seed)
    torch.manual_seed(seed + 1)
    x = torch.randn(3, 2 * groups, 5, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    return x.requires_grad_(), params


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("backend", ["reference", None])
def test_gradcheck(family, groups, backend):
    x, params = inputs(family, groups)
    fn = lambda x, *p: FUNCS[family](x, *p, channel_dim=1, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", ["hermite", "fourier"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("backend", ["reference", None])
def test_gradgradcheck(family, groups, backend):
    x, params = inputs(family, groups)
    fn = lambda x, *p: FUNCS[family](x, *p, channel_dim=1, backend=backend)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)
