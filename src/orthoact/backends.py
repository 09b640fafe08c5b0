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
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from orthoact import reference
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap

BACKENDS = ("auto", "reference", "fused", "triton")
ENV_VAR = "ORTHOACT_BACKEND"

# Filled by orthoact.ops: {backend: (unavailable_reason, run)} with
# unavailable_reason(spec, x, params, degree, options, inputs) -> str | None and
# run(spec, x, params, degree, channel_dim, options, inputs) -> Tensor.
_FAST: dict[str, tuple[Callable[..., str | None], Callable[..., Tensor]]] = {}
_warned: set[tuple[str, str]] = set()


def register_fast_path(backend: str, unavailable_reason: Callable[..., str | None], run: Callable[..., Tensor]) -> None:
    """Register ``run`` as ``backend``'s implementation (for every family with declared kernels)."""
    _FAST[backend] = (unavailable_reason, run)


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


def select(spec: FamilySpec, backend: str | None, x: Tensor, params: list[Tensor], degree, options: dict,
           inputs: InputMap) -> Callable[..., Tensor]:
    """The ``run(spec, x, params, degree, channel_dim, options, inputs)`` implementation to use for this
    call (``params`` hold the clamp limit last when ``inputs.clamp``)."""
    name = resolve_backend_name(backend)
    if name == "reference":
        return _reference_run
    if name != "auto":
        entry = _FAST.get(name)
        reason = "not installed" if entry is None else entry[0](spec, x, params, degree, options, inputs)
        if reason is not None:
            raise RuntimeError(f"backend={name!r} cannot run {spec.name} on this input: {reason}")
        return entry[1]
    reasons = []
    for candidate in _auto_order(x):
        entry = _FAST.get(candidate)
        if entry is None:
            continue
        reason = entry[0](spec, x, params, degree, options, inputs)
        if reason is None:
            return entry[1]
        reasons.append(f"{candidate}: {reason}")
    if reasons:
        _warn_once(spec.name, "; ".join(reasons))
    return _reference_run
