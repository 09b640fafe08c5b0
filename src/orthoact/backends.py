"""Choosing the implementation behind each functional call.

``backend`` is one of:

* ``"reference"``: the plain eager PyTorch implementation (:mod:`orthoact.reference`);
* ``"fused"``: the fused CPU kernels (:mod:`orthoact.ops`), one pass over each big tensor;
* ``"triton"``: the Triton GPU kernels;
* ``"auto"`` (default): the fastest correct path for the input's device and dtype.

The environment variable ``ORTHOACT_BACKEND`` forces one backend for every call that does not
name one explicitly (``backend=None``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from torch import Tensor

from orthoact import reference

BACKENDS = ("auto", "reference", "fused", "triton")
ENV_VAR = "ORTHOACT_BACKEND"

_REFERENCE: dict[str, Callable[..., Tensor]] = {
    "hermite": reference.hermite,
    "fourier": reference.fourier,
    "tropical": reference.tropical,
    "tropical_rational": reference.tropical_rational,
}

# Filled by orthoact.ops when a fast path registers itself: {backend: {family: (available, fn)}}.
_FAST: dict[str, dict[str, tuple[Callable[[Tensor], str | None], Callable[..., Tensor]]]] = {}
_warned: set[tuple[str, str]] = set()


def register_fast_path(
    backend: str, family: str, unavailable_reason: Callable[[Tensor], str | None], fn: Callable[..., Tensor]
) -> None:
    """Register ``fn`` as ``backend``'s implementation of ``family``.

    ``unavailable_reason(x)`` returns ``None`` when the path can run on ``x`` and otherwise a short
    reason (shown once in a warning when ``auto`` falls back, or in the error for an explicit request).
    """
    _FAST.setdefault(backend, {})[family] = (unavailable_reason, fn)


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
            stacklevel=4,
        )


def _auto_order(x: Tensor) -> tuple[str, ...]:
    return ("triton", "fused") if x.device.type == "cuda" else ("fused",)


def select(family: str, backend: str | None, x: Tensor) -> Callable[..., Tensor]:
    """Return the implementation of ``family`` to run on ``x``."""
    name = resolve_backend_name(backend)
    if name == "reference":
        return _REFERENCE[family]
    if name != "auto":
        entry = _FAST.get(name, {}).get(family)
        reason = "not installed" if entry is None else entry[0](x)
        if reason is not None:
            raise RuntimeError(f"backend={name!r} cannot run {family} on this input: {reason}")
        return entry[1]
    reasons = []
    for candidate in _auto_order(x):
        entry = _FAST.get(candidate, {}).get(family)
        if entry is None:
            continue
        reason = entry[0](x)
        if reason is None:
            return entry[1]
        reasons.append(f"{candidate}: {reason}")
    if reasons:
        _warn_once(family, "; ".join(reasons))
    return _REFERENCE[family]
