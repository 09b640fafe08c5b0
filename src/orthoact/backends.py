"""Choosing the implementation behind each functional call.

``backend`` is one of:

* ``"reference"``: the plain eager PyTorch implementation (:mod:`orthoact.reference`);
* ``"fused"``: the fused CPU kernels (:mod:`orthoact.ops`), one pass over each big tensor;
* ``"triton"``: the Triton GPU kernels;
* ``"auto"`` (default): the fastest correct path for the input's device, dtypes and degree; while
  ``torch.export`` traces (``torch.onnx.export(..., dynamo=True)`` among others), the reference, whose
  plain operations every exporter knows (a named backend keeps its custom op in the graph).

A fast path that cannot run a call (no compiler, a degree above its limit, float64 arithmetic on
Triton, ...) says why: ``auto`` then falls back to the next path (the reference last) with one
warning per reason, while an explicitly named backend raises ``RuntimeError`` with that reason.
The environment variable ``ORTHOACT_BACKEND`` forces one backend for every call that does not
name one explicitly (``backend=None``).

Besides ``run``, a backend may offer ``recompute``: ``F(x)`` and the gradients for a given ``dL/dF``
from one call (the fused and Triton backwards write the value too), for a caller that would otherwise
evaluate the forward again in its backward (:mod:`orthoact.nn`'s MLP). A backend without it gets
:func:`recompute_by_autograd` (its forward, then its backward, as before).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor

from orthoact import reference
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap

BACKENDS = ("auto", "reference", "fused", "triton")
ENV_VAR = "ORTHOACT_BACKEND"

class FastPath(NamedTuple):
    """A registered backend: ``unavailable_reason(spec, x, params, degree, options, inputs) -> str | None``,
    ``run(spec, x, params, degree, channel_dim, options, inputs) -> Tensor`` and optionally
    ``recompute(spec, x, params, grad, degree, channel_dim, options, inputs, need_input_grad,
    need_params) -> (y, dx, dparams)`` (see the top)."""

    unavailable_reason: Callable[..., str | None]
    run: Callable[..., Tensor]
    recompute: Callable[..., tuple] | None = None


# Filled by orthoact.ops.
_FAST: dict[str, FastPath] = {}
_warned: set[tuple[str, str]] = set()


def register_fast_path(backend: str, unavailable_reason: Callable[..., str | None], run: Callable[..., Tensor],
                       recompute: Callable[..., tuple] | None = None) -> None:
    """Register ``run`` (and ``recompute``, if any) as ``backend``'s implementation (for every family
    with declared kernels)."""
    _FAST[backend] = FastPath(unavailable_reason, run, recompute)


def resolve_backend_name(backend: str | None) -> str:
    if backend is None:
        backend = os.environ.get(ENV_VAR, "auto") or "auto"
        source = f"environment variable {ENV_VAR}"
    else:
        source = "backend"
    if backend not in BACKENDS:
        allowed = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"{source} must be one of {allowed}; got {backend!r}")
    return backend


def _warn_once(family: str, reason: str) -> None:
    if (family, reason) not in _warned:
        _warned.add((family, reason))
        warnings.warn(
            f"orthoact: no fast path for {family} here ({reason}); using the reference implementation",
            RuntimeWarning,
            stacklevel=5,
        )


def _auto_order(x: Tensor) -> tuple[str, ...]:
    if _exporting():  # a portable graph of plain operations (ONNX, ExecuTorch, ...), not our custom ops
        return ()
    return ("triton", "fused") if x.device.type == "cuda" else ("fused",)


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting and is_exporting())


def _reference_run(spec, x, params, degree, channel_dim, options, inputs):
    return reference.evaluate(spec, x, params, channel_dim, inputs, **options)


_REFERENCE = FastPath(lambda *args: None, _reference_run)


def _choose(spec: FamilySpec, backend: str | None, x: Tensor, params: list[Tensor], degree, options: dict,
            inputs: InputMap) -> FastPath:
    name = resolve_backend_name(backend)
    if name == "reference":
        return _REFERENCE
    if name != "auto":
        entry = _FAST.get(name)
        reason = "not installed" if entry is None else entry.unavailable_reason(spec, x, params, degree, options, inputs)
        if reason is not None:
            raise RuntimeError(f"backend={name!r} cannot run {spec.name} on this input: {reason}")
        return entry
    reasons = []
    for candidate in _auto_order(x):
        entry = _FAST.get(candidate)
        if entry is None:
            continue
        reason = entry.unavailable_reason(spec, x, params, degree, options, inputs)
        if reason is None:
            return entry
        reasons.append(f"{candidate}: {reason}")
    if reasons:
        _warn_once(spec.name, "; ".join(reasons))
    return _REFERENCE


def select(spec: FamilySpec, backend: str | None, x: Tensor, params: list[Tensor], degree, options: dict,
           inputs: InputMap) -> Callable[..., Tensor]:
    """The ``run(spec, x, params, degree, channel_dim, options, inputs)`` implementation to use for this
    call (``params`` hold the clamp limit last when ``inputs.clamp``)."""
    return _choose(spec, backend, x, params, degree, options, inputs).run


def select_recompute(spec: FamilySpec, backend: str | None, x: Tensor, params: list[Tensor], degree, options: dict,
                     inputs: InputMap) -> Callable[..., tuple]:
    """The ``recompute(spec, x, params, grad, degree, channel_dim, options, inputs, need_input_grad,
    need_params)`` of the backend :func:`select` chooses for this call (see the top)."""
    entry = _choose(spec, backend, x, params, degree, options, inputs)
    return entry.recompute or partial(recompute_by_autograd, entry.run)


def recompute_by_autograd(run: Callable[..., Tensor], spec: FamilySpec, x: Tensor, params: list[Tensor], grad: Tensor,
                          degree, channel_dim: int, options: dict, inputs: InputMap, need_input_grad: bool,
                          need_params: list[bool]) -> tuple:
    """``(y, dx, dparams)`` by ``run``'s forward and then its backward (autograd): ``y = F(x)`` without a
    graph, ``dx`` and each of ``dparams`` the gradient for ``grad = dL/dy`` (``None`` where not needed)."""
    with torch.enable_grad():
        xs = x.detach().requires_grad_(need_input_grad)
        ps = [p.detach().requires_grad_(need) for p, need in zip(params, need_params)]
        y = run(spec, xs, ps, degree, channel_dim, options, inputs)
        wanted = [t for t in (xs, *ps) if t.requires_grad]
        found = iter(torch.autograd.grad(y, wanted, grad, allow_unused=True) if wanted else ())
    grads = [next(found) if t.requires_grad else None for t in (xs, *ps)]
    grads = [torch.zeros_like(t) if g is None and t.requires_grad else g for g, t in zip(grads, (xs, *ps))]
    return y.detach(), grads[0], grads[1:]
