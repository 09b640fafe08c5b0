"""Shared test tables, all derived from the family declarations: adding a family adds it to every
family-parametrized test with no edit here."""

import itertools
import os
import socket

import pytest
import torch

import orthoact
import orthoact.functional as OF
from orthoact import declarations

NO_GPU = not os.path.exists("/dev/nvidia0")


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state: torch seeds itself at random in each process, and
    a test's data (and so a near-tie of two tropical lines, say) must not change from run to run."""
    torch.manual_seed(0)


def _variants() -> list[str]:
    """Every family, and every non-default combination of its options as ``name@key=value``."""
    out = []
    for spec in declarations.specs():
        names = [o.name for o in spec.options]
        for combo in itertools.product(*(o.allowed for o in spec.options)):
            changed = [f"{n}={v}" for n, v, o in zip(names, combo, spec.options) if v != o.default]
            out.append(spec.name + ("@" + ",".join(changed) if changed else ""))
    return out


#: family names (each family once, default options)
FAMILIES = orthoact.family_names()
#: every kernel variant: "hermite", ..., "rational", "rational@version=B"
VARIANTS = _variants()
#: each family by name at its default degree, as models take them: "hermite:3", ..., "rational:5/4"
ACT_NAMES = [f"{s.name}:{s.degree_text(s.default_degree)}" for s in declarations.specs()]


def split_variant(variant: str) -> tuple[str, dict]:
    name, _, rest = variant.partition("@")
    options = dict(item.split("=", 1) for item in rest.split(",")) if rest else {}
    return name, options


def spec_of(variant: str):
    return declarations.get(split_variant(variant)[0])


def degree_for(variant: str, degree):
    """A degree of ``variant`` from one int (a rational gets denominator degree - 1, at least 1)."""
    if degree is None or isinstance(degree, tuple):
        return degree
    if len(spec_of(variant).degree_args) == 2:
        return (degree, max(1, degree - 1))
    return degree


def make(variant: str, degree=None, *, groups: int = 1, dtype=torch.float64, seed: int = 0, random=True, **kwargs):
    """A module of ``variant`` with (by default) random, well-spread parameters, in ``dtype``."""
    name, options = split_variant(variant)
    spec = declarations.get(name)
    torch.manual_seed(seed)
    kwargs.setdefault("backend", "reference")
    kwargs.setdefault("init", next(iter(spec.inits)))  # cheap and deterministic (no fit)
    degree = degree_for(variant, degree)
    degree_kwargs = {} if degree is None else dict(zip(spec.degree_args, degree if isinstance(degree, tuple) else (degree,)))
    module = spec.module(groups=groups, dtype=dtype, **degree_kwargs, **options, **kwargs)
    if random:
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return module


def params_of(module) -> dict[str, torch.Tensor]:
    """The functional arguments of a module, in call order."""
    return dict(zip(module.spec.param_names, module.tensors()))


def call(module_or_variant, x, params, channel_dim=-1, backend=None):
    """The functional form of a module's family (with its options and input map) on explicit
    parameters (a module with a clamp takes its limit last, as ``reference_tensors``)."""
    if isinstance(module_or_variant, str):
        name, options = split_variant(module_or_variant)
        return OF.apply(name, x, *params, channel_dim=channel_dim, backend=backend, **options)
    module = module_or_variant
    extra = {"domain": module.domain}
    if module.clamp:
        params, extra["clamp_limit"] = params[:-1], params[-1]
    return OF.apply(module.family, x, *params, channel_dim=channel_dim, backend=backend, **module.options, **extra)


def pytest_configure(config):
    """Triton kernels run in the interpreter on CPU tensors where there is no NVIDIA GPU. Triton reads
    the variable when it is imported, so it is set here, before collection imports anything."""
    if NO_GPU:
        os.environ.setdefault("TRITON_INTERPRET", "1")


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


#: tolerance of a result rounded to (or computed in) each dtype
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=2e-5, atol=2e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=2e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}


def _run(module, x, params, channel_dim, grad, backend):
    xx = x.clone().requires_grad_()
    ps = [p.detach().clone().requires_grad_() for p in params]
    y = call(module, xx, ps, channel_dim=channel_dim, backend=backend)
    y.backward(grad.to(y.dtype))
    return [y.detach(), xx.grad] + [p.grad for p in ps]


def assert_matches_reference(module, x, grad, channel_dim=-1, backend="fused", check_graph=None, fast=None):
    """Run ``backend`` with the module's parameters and ``x`` exactly as given (no cast) and compare
    the output, the input gradient and every parameter gradient with the float64 reference on the
    same values (``fast``: those results computed otherwise, e.g. by ``forward_and_backward``).

    The tolerance is the larger of the dtype's (``TOL``) and 10x the error of the naive reference
    evaluated in the compute dtype (the promoted dtype of input and parameters, at least float32):
    a fast path may be as ill-conditioned as the formula itself (a degree-20 polynomial in float32),
    never much worse. Parameter gradients are sums over all elements: their tolerance grows with
    sqrt(numel).
    """
    params = list(module.reference_tensors())
    compute = torch.promote_types(torch.float32, x.dtype)
    for p in params:
        compute = torch.promote_types(compute, p.dtype)
    fast = _run(module, x, params, channel_dim, grad, backend) if fast is None else fast
    exact = _run(module, x.double(), [p.double() for p in params], channel_dim, grad.double(), "reference")
    naive = _run(module, x.to(compute), [p.to(compute) for p in params], channel_dim, grad.to(compute), "reference")
    if check_graph is not None:
        check_graph(module, x, params, channel_dim)
    names = ["output", "input grad"] + [f"grad of {n}" for n in module.spec.param_names] + \
        (["grad of clamp_limit"] if module.clamp else [])
    for name, f, e, n, p in zip(names, fast, exact, naive, [x, x] + params):
        if f is None:
            assert e is None or not e.abs().sum(), name
            continue
        assert f.dtype == p.dtype, (name, f.dtype, p.dtype)  # output/dx in x's dtype, grads in each parameter's
        base = TOL[f.dtype] if TOL[f.dtype]["rtol"] > TOL[compute]["rtol"] else TOL[compute]
        scale = 1.0 if name in ("output", "input grad") else max(1.0, x.numel() ** 0.5)
        finite = torch.isfinite(e) & torch.isfinite(n.double())
        naive_error = (n.double() - e)[finite].abs().max().item() if finite.any() else 0.0
        atol = max(base["atol"] * scale, 10 * naive_error)
        torch.testing.assert_close(f.double(), e, rtol=base["rtol"] * scale, atol=atol,
                                   msg=lambda m, name=name: f"{module.family} {name} ({backend}): {m}")
