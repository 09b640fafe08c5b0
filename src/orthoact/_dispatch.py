"""Validation at the public boundary and dispatch to a backend: the one entry point behind every
functional twin and every module's ``forward``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from orthoact import _validation as V
from orthoact.backends import select, select_recompute
from orthoact.declarations import FamilySpec
from orthoact.inputs import InputMap, parse_domain


def check_parameters(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], channel_dim: int):
    """Parameter matrices ``(groups, columns)`` checked against each other and the input; returns
    them (1-D tensors become one group) and the degree they describe."""
    V.check_input(x)
    channel_dim = V.check_int("channel_dim", channel_dim)
    if len(params) != len(spec.params):
        raise TypeError(f"{spec.name} takes {len(spec.params)} parameter tensors ({', '.join(spec.param_names)}), "
                        f"got {len(params)}")
    mats = [V.as_parameter_matrix(p.name, t) for p, t in zip(spec.params, params)]
    named = dict(zip(spec.param_names, mats))
    groups = V.check_same_groups(**named)
    V.check_device(x, **named)
    degree = spec.degree_of({name: m.shape[1] for name, m in named.items()})
    low = min(spec.degree_values(degree))
    if low < spec.min_degree:
        wanted = spec.columns(spec.min_degree if not isinstance(degree, tuple) else tuple(
            max(d, spec.min_degree) for d in degree))
        name, shape = next((n, tuple(m.shape)) for n, m in named.items() if m.shape[1] < wanted[n])
        raise ValueError(f"{name} must have at least {wanted[name]} columns (degree >= {spec.min_degree}), "
                         f"got shape {shape}")
    for name, columns in spec.columns(degree).items():
        if named[name].shape[1] != columns:
            raise ValueError(
                f"{name} must have shape (groups, {columns}) for a {spec.name} activation of degree "
                f"{spec.degree_text(degree)} (given by the other parameters), got {tuple(named[name].shape)}"
            )
    V.check_groups_fit(x, groups, channel_dim)
    return mats, degree


def _checked(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], channel_dim, domain, clamp_limit, options):
    """The options, input map, parameter matrices (the clamp limit last) and degree of a call."""
    options = spec.option_values(**options)
    inputs = InputMap(parse_domain(domain), clamp_limit is not None).check(spec)
    mats, degree = check_parameters(spec, x, params, channel_dim)
    if clamp_limit is not None:
        limit = V.as_parameter_matrix("clamp_limit", clamp_limit, 1)
        if limit.shape[0] != mats[0].shape[0]:
            raise ValueError(f"clamp_limit must have shape ({mats[0].shape[0]}, 1), one limit per group, "
                             f"got {tuple(limit.shape)}")
        V.check_device(x, clamp_limit=limit)
        mats = [*mats, limit]
    return options, inputs, mats, degree


def apply(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], channel_dim: int = -1, backend: str | None = None,
          *, domain=None, clamp_limit: Tensor | None = None, **options) -> Tensor:
    """Validate, choose a backend (see :mod:`orthoact.backends`) and run family ``spec`` on ``x``, with
    the input map of :mod:`orthoact.inputs` (``domain``, and a clamp when ``clamp_limit`` is given)."""
    options, inputs, mats, degree = _checked(spec, x, params, channel_dim, domain, clamp_limit, options)
    run = select(spec, backend, x, mats, degree, options, inputs)
    return run(spec, x, mats, degree, channel_dim, options, inputs)


def recompute(spec: FamilySpec, x: Tensor, params: Sequence[Tensor], grad: Tensor, channel_dim: int = -1,
              backend: str | None = None, *, domain=None, clamp_limit: Tensor | None = None,
              need_input_grad: bool = True, **options) -> tuple[Tensor, Tensor | None, list[Tensor | None]]:
    """What :func:`apply` computes and its first derivatives at once, without a graph: ``(y, dx,
    dparams)`` with ``y = F(x)`` and, for ``grad = dL/dy``, ``dx`` (``None`` unless
    ``need_input_grad``) and the gradient of each of ``params`` and then of ``clamp_limit`` (``None``
    for those that do not require grad), by the chosen backend's ``recompute`` (one pass for the
    fused kernels; see :mod:`orthoact.backends`)."""
    if grad.shape != x.shape:
        raise ValueError(f"grad must have the input's shape {tuple(x.shape)}, got {tuple(grad.shape)}")
    tensors = [*params] + ([clamp_limit] if clamp_limit is not None else [])
    options, inputs, mats, degree = _checked(spec, x, params, channel_dim, domain, clamp_limit, options)
    V.check_device(x, grad=grad)
    need = [t.requires_grad for t in tensors]
    fn = select_recompute(spec, backend, x, mats, degree, options, inputs)
    y, dx, dmats = fn(spec, x, mats, grad, degree, channel_dim, options, inputs, need_input_grad, need)
    return y, dx, [d.reshape(t.shape) if d is not None else None for d, t in zip(dmats, tensors)]
