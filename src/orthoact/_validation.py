"""Argument checks shared by the functional API and the modules (the public boundary)."""

from __future__ import annotations

import numbers

from torch import Tensor


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return int(value)


def check_choice(name: str, value, allowed) -> str:
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")
    return value


def check_input(x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"input must be a floating-point tensor (float16, bfloat16, float32 or float64), got {x.dtype}"
        )


def as_parameter_matrix(name: str, value, n_params: int | None = None) -> Tensor:
    """Parameters are ``(groups, n_params)``; a 1-D tensor is taken as one group."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if value.dim() == 1:
        value = value.unsqueeze(0)
    if value.dim() != 2 or value.shape[1] == 0:
        raise ValueError(f"{name} must have shape (groups, n_params) or (n_params,), got {tuple(value.shape)}")
    if n_params is not None and value.shape[1] != n_params:
        raise ValueError(f"{name} must have {n_params} columns, got shape {tuple(value.shape)}")
    return value


def check_same_groups(**params: Tensor) -> int:
    groups = {name: p.shape[0] for name, p in params.items()}
    if len(set(groups.values())) != 1:
        raise ValueError(f"all parameters must have the same number of groups (rows), got {groups}")
    return next(iter(groups.values()))


def check_groups_fit(x: Tensor, groups: int, channel_dim: int) -> None:
    """With ``groups > 1``, ``channel_dim`` must index ``x`` and ``groups`` must divide its size."""
    if groups == 1:
        return
    if x.dim() == 0 or not -x.dim() <= channel_dim < x.dim():
        lo, hi = -max(x.dim(), 1), max(x.dim() - 1, 0)
        raise ValueError(
            f"channel_dim={channel_dim} is out of range for an input with {x.dim()} dimensions "
            f"(allowed: {lo}..{hi})" if x.dim() else
            f"groups={groups} needs an input with a channel dimension, got a 0-d tensor"
        )
    size = x.shape[channel_dim]
    if size % groups != 0:
        raise ValueError(
            f"groups={groups} must divide the size {size} of channel_dim={channel_dim} "
            f"of the input with shape {tuple(x.shape)}"
        )


def check_device(x: Tensor, **params: Tensor) -> None:
    for name, p in params.items():
        if p.device != x.device:
            raise ValueError(f"{name} is on {p.device} but the input is on {x.device}; move both to one device")
