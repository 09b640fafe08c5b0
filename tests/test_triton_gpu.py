"""Triton kernels on a real GPU (skipped where CUDA is not available)."""

import pytest
import torch

import orthoact.functional as OF
from conftest import FAMILIES, make, params_of

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
FUNCS = {"hermite": OF.hermite, "fourier": OF.fourier, "tropical": OF.tropical, "tropical_rational": OF.tropical_rational}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, groups, channel_dim", [(((1 << 20) + 7,), 1, -1), ((8, 64, 33, 31), 64, 1), ((4096, 768), 768, -1)])
def test_triton_gpu_matches_reference(family, dtype, shape, groups, channel_dim):
    module = make(family, groups=groups, dtype=torch.float32, seed=0).cuda()
    params = list(params_of(module).values())
    x = torch.randn(shape, device="cuda").to(dtype)
    grad = torch.randn(shape, device="cuda").to(dtype)
    outs = {}
    for backend in ("reference", "triton"):
        xx = x.clone().requires_grad_()
        ps = [p.detach().clone().requires_grad_() for p in params]
        y = FUNCS[family](xx, *ps, channel_dim=channel_dim, backend=backend)
        y.backward(grad)
        outs[backend] = [y.detach(), xx.grad] + [p.grad for p in ps]
    tol = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}[dtype]
    for i, (a, b) in enumerate(zip(outs["reference"], outs["triton"])):
        scale = 1.0 if i < 2 else x.numel() ** 0.5
        torch.testing.assert_close(b.double(), a.double(), rtol=tol * scale, atol=tol * scale)


def test_auto_picks_triton_on_cuda():
    x = torch.randn(1000, device="cuda", requires_grad=True)
    y = OF.hermite(x, torch.ones(1, 4, device="cuda"))
    assert "triton_forward" in type(y.grad_fn).__name__
