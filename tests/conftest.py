import os

# Triton kernels run in the interpreter on CPU tensors where there is no NVIDIA GPU. Set before
# anything imports triton (torch.compile does), as triton reads it at import and decoration time.
if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import socket

import pytest
import torch

import orthoact

FAMILIES = orthoact.FAMILIES


def make(family: str, degree: int | None = None, *, groups: int = 1, dtype=torch.float64, seed: int = 0, random=True, **kwargs):
    """A module of ``family`` with (by default) random, well-spread parameters, in ``dtype``."""
    torch.manual_seed(seed)
    kwargs.setdefault("backend", "reference")
    module = orthoact.create(family, groups=groups, dtype=dtype, **({} if degree is None else {"degree": degree}), **kwargs)
    if random:
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.add_(0.3 * torch.randn_like(p))
    return module


def params_of(module) -> dict[str, torch.Tensor]:
    """The functional arguments of a module, in call order."""
    names = {
        "hermite": ["coefficients"],
        "fourier": ["bias", "coefficients", "frequencies", "phases"],
        "tropical": ["offsets"],
        "tropical_rational": ["slopes_num", "offsets_num", "slopes_den", "offsets_den"],
    }[module.family]
    return {n: getattr(module, n) for n in names}


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


def free_port() -> int:
    """A free TCP port on localhost (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_torchrun_matches(kind: str, preset: str, single_dir, ddp_dir, ddp_args: list[str], losses) -> None:
    """Run ``orthoact train KIND`` under a 2-process torchrun (gloo) and check that its losses and
    final parameters equal those of the single-process run already in ``single_dir``."""
    import os
    import subprocess
    import sys

    import numpy as np

    from orthoact.train import checkpoint as ckpt

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "orthoact", "train", kind, "--preset", preset, *ddp_args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(losses(ddp_dir), losses(single_dir), rtol=1e-5, atol=1e-6)
    a = ckpt.load(single_dir / "ckpt.pt")["model"]
    b = ckpt.load(ddp_dir / "ckpt.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
