"""Triton kernels on a real GPU (skipped where CUDA is not available)."""


import pytest
import torch
from torch import nn

import orthoact
from conftest import VARIANTS, call, make, params_of

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

LAYOUTS = [
    pytest.param(((1 << 20) + 7,), 1, -1, id="long-run"),
    pytest.param((8, 64, 33, 31), 64, 1, id="per-channel-NCHW"),
    pytest.param((8, 33, 31, 64), 64, -1, id="per-channel-channels-last"),
    pytest.param((4096, 768), 768, -1, id="per-channel-rows"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, groups, channel_dim", LAYOUTS)
def test_triton_gpu_matches_reference(variant, dtype, shape, groups, channel_dim):
    module = make(variant, groups=groups, dtype=torch.float32, seed=0).cuda()
    params = list(params_of(module).values())
    x = torch.randn(shape, device="cuda").to(dtype)
    grad = torch.randn(shape, device="cuda").to(dtype)
    outs = {}
    for backend in ("reference", "triton"):
        exact = backend == "reference"
        xx = (x.double() if exact else x).clone().requires_grad_()
        ps = [(p.double() if exact else p).detach().clone().requires_grad_() for p in params]
        y = call(module, xx, ps, channel_dim=channel_dim, backend=backend)
        y.backward(grad.to(xx.dtype))
        outs[backend] = [y.detach(), xx.grad] + [p.grad for p in ps]
    tol = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}[dtype]
    for i, (a, b) in enumerate(zip(outs["reference"], outs["triton"])):
        scale = (1.0 if i < 2 else x.numel() ** 0.5) * (max(1.0, a.abs().max().item()) if i == 0 else 1.0)
        torch.testing.assert_close(b.double(), a, rtol=tol * scale, atol=tol * scale)


def _degrees(variant):
    """Up to the kernels' limit (64); the families with 4 (n + 1) or 2 n parameters stop at 32, whose
    fully unrolled kernels already take long to compile."""
    return [1, 8, 64] if variant.split("@")[0] in ("hermite", "fourier", "tropical") else [1, 8, 32]


@pytest.mark.parametrize("variant, degree", [(v, d) for v in VARIANTS for d in _degrees(v)])
def test_triton_gpu_degrees(variant, degree):
    module = make(variant, degree, dtype=torch.float32, seed=degree).cuda()
    x = torch.randn(1 << 16, device="cuda")
    grad = torch.randn_like(x)
    params = list(params_of(module).values())
    outs = {}
    for backend in ("reference", "triton"):
        exact = backend == "reference"
        xx = (x.double() if exact else x).clone().requires_grad_()
        ps = [(p.double() if exact else p).detach().clone().requires_grad_() for p in params]
        y = call(module, xx, ps, backend=backend)
        y.backward(grad.to(xx.dtype))
        outs[backend] = [y.detach(), xx.grad] + [p.grad for p in ps]
    for i, (a, b) in enumerate(zip(outs["reference"], outs["triton"])):
        scale = max(1.0, a.abs().max().item()) * (1.0 if i < 2 else x.numel() ** 0.5)
        torch.testing.assert_close(b.double(), a, rtol=1e-4 * scale, atol=1e-4 * scale)


def test_auto_picks_triton_on_cuda():
    x = torch.randn(1000, device="cuda", requires_grad=True)
    y = orthoact.functional.hermite(x, torch.ones(1, 4, device="cuda"))
    assert "triton_forward" in type(y.grad_fn).__name__


@pytest.mark.parametrize("family", orthoact.family_names())
def test_torch_compile_fullgraph_on_cuda(family):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), orthoact.create(family, groups=4), nn.Linear(256, 64)).cuda()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(32, 64, device="cuda")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    compiled(x).sum().backward()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, groups, channel_dim", LAYOUTS)
def test_triton_gpu_recompute(variant, dtype, shape, groups, channel_dim):
    """forward_and_backward (the recompute MLP's backward): one launch writes y with the gradients."""
    module = make(variant, groups=groups, dtype=torch.float32, seed=0, channel_dim=channel_dim, backend="triton").cuda()
    x = torch.randn(shape, device="cuda").to(dtype)
    grad = torch.randn(shape, device="cuda").to(dtype)
    got = module.forward_and_backward(x, grad)
    xx = x.clone().requires_grad_()
    ps = [p.detach().clone().requires_grad_() for p in module.reference_tensors()]
    y = call(module, xx, ps, channel_dim=channel_dim, backend="triton")
    y.backward(grad)
    tol = {torch.float32: 2e-5, torch.bfloat16: 2e-2}[dtype]
    for i, (a, b) in enumerate(zip([y.detach(), xx.grad, *(p.grad for p in ps)], [got[0], got[1], *got[2]])):
        scale = (1.0 if i < 2 else x.numel() ** 0.5) * max(1.0, a.abs().max().item())
        torch.testing.assert_close(b.double(), a.double(), rtol=tol * scale, atol=tol * scale)
