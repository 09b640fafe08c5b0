"""float64 gradcheck (and gradgradcheck for the smooth families) w.r.t. the input and every parameter,
on every backend that runs float64 here."""

import pytest
import torch

from conftest import VARIANTS, call, make, params_of

SMOOTH = [v for v in VARIANTS if not v.startswith("tropical")]


def inputs(variant, groups, seed=0):
    module = make(variant, groups=groups, seed=seed)
    torch.manual_seed(seed + 1)
    x = torch.randn(3, 2 * groups, 5, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_() for p in params_of(module).values()]
    return module, x.requires_grad_(), params


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("backend", ["reference", None])
def test_gradcheck(variant, groups, backend):
    module, x, params = inputs(variant, groups)
    fn = lambda x, *p: call(module, x, p, channel_dim=1, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("variant", SMOOTH)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("backend", ["reference", None])
def test_gradgradcheck(variant, groups, backend):
    module, x, params = inputs(variant, groups)
    fn = lambda x, *p: call(module, x, p, channel_dim=1, backend=backend)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)
