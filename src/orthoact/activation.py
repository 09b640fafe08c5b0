r"""The ``nn.Module`` shell every family shares: parameters from the declaration, initialisation,
gains, ``repr`` and a ``forward`` that is one call to the functional dispatch.

Reference: Khalfaoui-Hassani & Kesselheim, "Polynomial, trigonometric, and tropical activations",
arXiv 2502.01247 (ICLR 2026).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from orthoact import _validation as V
from orthoact._dispatch import apply, recompute
from orthoact.backends import resolve_backend_name
from orthoact.declarations import FamilySpec
from orthoact.inputs import CLAMP_INIT, InputMap, parse_domain
from orthoact.reference import integrated_gains
from orthoact.targets import TARGETS

__all__ = ["BasisActivation"]


class BasisActivation(nn.Module):
    """Common shell: degree, ``groups``, ``channel_dim``, ``init``, options and ``backend`` handling.

    A subclass sets ``spec`` (its family's declaration); the parameters, their shapes, the
    initialisations, the formula and the gains all come from it.
    """

    spec: ClassVar[FamilySpec]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.spec.module = cls  # the declaration knows its module class

    def __init__(
        self,
        degree=None,
        *,
        groups: int = 1,
        channel_dim: int = -1,
        init: str | None = None,
        domain=None,
        clamp: bool = False,
        backend: str | None = None,
        device=None,
        dtype=None,
        **options,
    ) -> None:
        super().__init__()
        spec = self.spec
        if not isinstance(clamp, bool):
            raise TypeError(f"clamp must be a bool, got {clamp!r}")
        self.domain = parse_domain(domain)
        self.clamp = clamp
        InputMap(self.domain, clamp).check(spec)
        self.degree = self._check_degree(spec.default_degree if degree is None else degree)
        self.groups = V.check_positive_int("groups", groups)
        self.channel_dim = V.check_int("channel_dim", channel_dim)
        self.switches = {}
        for switch in spec.switches:
            value = options.pop(switch.name, switch.default)
            if not isinstance(value, bool):
                raise TypeError(f"{switch.name} must be a bool, got {value!r}")
            self.switches[switch.name] = value
        self.options = spec.option_values(**options)
        self.init = V.check_choice("init", spec.default_init if init is None else init, tuple(spec.inits) + tuple(TARGETS))
        if backend is not None:
            resolve_backend_name(backend)
        self.backend = backend
        if dtype is not None and not torch.empty((), dtype=dtype).is_floating_point():
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        factory = {"device": device, "dtype": dtype}
        for name, columns in spec.columns(self.degree).items():
            tensor = torch.empty(self.groups, columns, **factory)
            if name in self.fixed_parameters:
                self.register_buffer(name, tensor)
            else:
                setattr(self, name, nn.Parameter(tensor))
        #: the learnable clamp's limit, one per group (``None`` without a clamp)
        self.clamp_limit = nn.Parameter(torch.empty(self.groups, 1, **factory)) if clamp else None
        self.reset_parameters()

    @property
    def family(self) -> str:
        """The family's name (``"hermite"``)."""
        return self.spec.name

    def _check_degree(self, degree):
        names = self.spec.degree_args
        values = degree if isinstance(degree, tuple) else (degree,)
        if len(values) != len(names):
            raise ValueError(f"{self.spec.name} takes {len(names)} degree(s) ({', '.join(names)}), got {degree!r}")
        checked = tuple(V.check_positive_int(name, value) for name, value in zip(names, values))
        for name, value in zip(names, checked):
            if value < self.spec.min_degree:
                raise ValueError(f"{name} must be >= {self.spec.min_degree}, got {value}")
        return checked if isinstance(degree, tuple) else checked[0]

    @property
    def fixed_parameters(self) -> frozenset[str]:
        """Names of the family's parameters kept fixed (buffers) by a switch such as
        ``learn_frequencies=False``; the others are learned."""
        return frozenset(name for switch in self.spec.switches if not self.switches[switch.name] for name in switch.fixes)

    def tensors(self) -> list[Tensor]:
        """The family's parameter tensors (parameters and fixed buffers) in declaration order."""
        return [getattr(self, name) for name in self.spec.param_names]

    @property
    def inputs(self) -> InputMap:
        """The input map (clamp, domain) of this module, see :mod:`orthoact.inputs`."""
        return InputMap(self.domain, self.clamp)

    def reset_parameters(self) -> None:
        """Re-initialise: the family's own init, or a least-squares fit when ``init`` names an activation
        (on the module's domain when it has one, through its clamp when it has one); the clamp limit
        starts at sqrt(3), as torchortho's."""
        if any(t.is_meta for t in self.tensors()):  # no values to compute (e.g. transformers builds on meta)
            return
        if self.clamp_limit is not None:
            with torch.no_grad():
                self.clamp_limit.fill_(CLAMP_INIT)
        if self.init in self.spec.inits:
            values = self.spec.inits[self.init](self.degree, **self.options)
        else:
            from orthoact.fit import fit_parameters  # basis math only; no module or registry import

            values = fit_parameters(self.spec, self.init, self.degree, options=self.options, fixed=self.fixed_parameters,
                                    domain=self.domain, clamp_limit=CLAMP_INIT if self.clamp else None)
        with torch.no_grad():
            for name, value in values.items():
                target = getattr(self, name)
                if callable(value):  # an in-place initializer such as nn.init.normal_
                    value(target)
                else:
                    target.copy_(torch.as_tensor(value, dtype=torch.float64).expand_as(target))

    def forward(self, x: Tensor) -> Tensor:
        return apply(self.spec, x, self.tensors(), self.channel_dim, self.backend, domain=self.domain,
                     clamp_limit=self.clamp_limit, **self.options)

    def forward_and_backward(self, x: Tensor, grad: Tensor, need_input_grad: bool = True):
        """``(y, dx, dparams)`` at once and without a graph: ``y = self(x)`` and, for ``grad = dL/dy``,
        ``dx = dL/dx`` (``None`` unless ``need_input_grad``) and the gradient of each of
        :meth:`reference_tensors` (``None`` for those that do not require grad). What a block that
        recomputes the activation in its backward needs (:class:`orthoact.nn.MLP`): the fused kernels
        compute it in one call, in one pass over the tensors where each group's run is long and there
        is no input map (the value from what the backward computes anyway: the sines and cosines, the
        basis, the maxima, P/Q), the Triton kernels in one launch (x read once); the reference runs
        the forward and then the backward. First
        derivatives only."""
        return recompute(self.spec, x, self.tensors(), grad, self.channel_dim, self.backend, domain=self.domain,
                         clamp_limit=self.clamp_limit, need_input_grad=need_input_grad, **self.options)

    def gains(self) -> tuple[Tensor, Tensor]:
        r"""``(E[F(x)^2], E[F'(x)^2])`` for :math:`x \sim \mathcal N(0,1)`, each of shape ``(groups,)``.

        Exact (closed form or exact piecewise integration) where the family allows, float64,
        differentiable in the parameters. With a clamp or a domain, numerical integration of the
        reference (trapezoid rule on 24001 points of [-12, 12]).
        """
        if self.inputs.identity:
            return self.spec.gains(*self.tensors(), **self.options)
        return integrated_gains(self.spec, self.reference_tensors(), self.inputs, self.options)

    def reference_tensors(self) -> list[Tensor]:
        """What the reference takes: the family's tensors, and the clamp limit last when there is one."""
        return self.tensors() + ([self.clamp_limit] if self.clamp_limit is not None else [])

    def degree_kwargs(self) -> dict:
        """The constructor's degree argument(s), e.g. ``{"degree": 3}``."""
        values = self.degree if isinstance(self.degree, tuple) else (self.degree,)
        return dict(zip(self.spec.degree_args, values))

    def config(self) -> dict:
        """Constructor arguments that rebuild this module (its values come from a state dict)."""
        extra = {"domain": list(self.domain)} if self.domain is not None else {}
        extra |= {"clamp": True} if self.clamp else {}
        return {**self.degree_kwargs(), "groups": self.groups, "channel_dim": self.channel_dim, "init": self.init,
                **self.options, **self.switches, **extra}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> BasisActivation:
        """A module with the structure ``config`` (from :meth:`config`) and placeholder values (the
        family's first init, cheap and without touching the random state); load a state dict into
        it. Its ``init`` is the recorded one (what ``reset_parameters`` would apply)."""
        config = dict(config)
        recorded_init = kwargs.pop("init", None) or config.pop("init", None)
        config.pop("init", None)
        with torch.random.fork_rng(devices=[]):
            module = cls(**config, init=next(iter(cls.spec.inits)), **kwargs)
        if recorded_init is not None:
            module.init = V.check_choice("init", recorded_init, tuple(cls.spec.inits) + tuple(TARGETS))
        return module

    def label(self) -> str:
        """Short name such as ``hermite-3`` or ``rational-5/4``."""
        return f"{self.spec.name}-{self.spec.degree_text(self.degree)}"

    def extra_repr(self) -> str:
        parts = [f"{k}={v}" for k, v in self.degree_kwargs().items()] + [f"groups={self.groups}"]
        if self.channel_dim != -1:
            parts.append(f"channel_dim={self.channel_dim}")
        if self.init != self.spec.default_init:
            parts.append(f"init={self.init!r}")
        for option in self.spec.options:
            if self.options[option.name] != option.default:
                parts.append(f"{option.name}={self.options[option.name]!r}")
        parts += [f"{s.name}={self.switches[s.name]!r}" for s in self.spec.switches if self.switches[s.name] != s.default]
        if self.domain is not None:
            parts.append(f"domain=({self.domain[0]:g}, {self.domain[1]:g})")
        if self.clamp:
            parts.append("clamp=True")
        if self.backend is not None:
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
