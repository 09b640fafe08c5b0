"""Networks as functions of their inputs (paper, Section 3: polynomial and tropical views).

* :func:`to_polynomial`: a network of Linear layers and Hermite activations (plus Identity,
  Flatten, Dropout in eval) is a multivariate polynomial; this returns it, one ``sympy``
  expression per output, of total degree up to the product of the activation degrees.
* :func:`count_linear_pieces`: a network with Tropical / TropicalRational (or ReLU) activations is
  piecewise linear; this counts its linear pieces along a line through input space.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from orthoact._errors import MissingDependency
from orthoact.basis.hermite import hermite_monomial_coefficients
from orthoact.families import Hermite


def _sympy():
    try:
        import sympy
    except ImportError:
        raise MissingDependency("polynomial extraction needs sympy: pip install sympy") from None
    return sympy


def _layers(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        out = []
        for m in model:
            out.extend(_layers(m))
        return out
    return [model]


def _monomial(coefficients: Tensor) -> list[float]:
    """Monomial coefficients of sum_k a_k h_k (float64, exact up to rounding: no linear solve)."""
    return hermite_monomial_coefficients(coefficients.detach()).tolist()


def to_polynomial(model: nn.Module, input_names: list[str] | None = None, expand: bool = True):
    """The network as ``sympy`` polynomials of its inputs (a list, one per output).

    Args:
        model: an ``nn.Sequential`` (possibly nested) of ``nn.Linear``, :class:`orthoact.Hermite`
            (any ``groups``, acting on the feature dimension), ``nn.Identity``, ``nn.Flatten`` and
            ``nn.Dropout``.
        input_names: names of the input variables. Default: ``x0, x1, ...``
        expand: expand the result into a sum of monomials. Default: ``True``
    """
    sp = _sympy()
    layers = _layers(model)
    first = next((m for m in layers if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("to_polynomial needs at least one nn.Linear layer to know the number of inputs")
    n_in = first.in_features
    names = input_names or [f"x{i}" for i in range(n_in)]
    if len(names) != n_in:
        raise ValueError(f"input_names has {len(names)} names, the network has {n_in} inputs")
    exprs = list(sp.symbols(names))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().double().tolist()
            b = layer.bias.detach().double().tolist() if layer.bias is not None else [0.0] * layer.out_features
            exprs = [sum((sp.Float(wji) * e for wji, e in zip(row, exprs)), sp.Float(bj)) for row, bj in zip(w, b)]
        elif isinstance(layer, Hermite):
            if not layer.inputs.identity:
                raise ValueError(f"{layer!r} is no polynomial: its domain (a linear extension) or clamp makes it "
                                 "piecewise or transcendental; to_polynomial takes Hermite modules without them")
            groups, width = layer.groups, len(exprs)
            if width % groups:
                raise ValueError(f"Hermite(groups={groups}) cannot split {width} features")
            monos = [_monomial(layer.coefficients[g].detach()) for g in range(groups)]
            out = []
            for c, e in enumerate(exprs):
                coeffs = monos[c // (width // groups)]
                acc = sp.Float(coeffs[-1])
                for a in reversed(coeffs[:-1]):  # Horner's rule
                    acc = acc * e + sp.Float(a)
                out.append(sp.expand(acc) if expand else acc)
            exprs = out
        elif isinstance(layer, (nn.Identity, nn.Flatten, nn.Dropout)):
            continue
        else:
            raise TypeError(
                f"to_polynomial supports Linear, Hermite, Identity, Flatten and Dropout layers, not {type(layer).__name__}"
            )
    return [sp.expand(e) if expand else e for e in exprs]


def polynomial_degree(expr, names=None) -> int:
    sp = _sympy()
    symbols = sorted(expr.free_symbols, key=str) if names is None else sp.symbols(names)
    return sp.Poly(expr, *symbols).total_degree() if symbols else 0


@torch.no_grad()
def count_linear_pieces(model: nn.Module, start: Tensor, direction: Tensor, t_range: tuple[float, float] = (-10.0, 10.0),
                        resolution: int = 200_001, tol: float = 1e-7) -> int:
    """Number of linear pieces of ``t -> model(start + t * direction)`` (summed over outputs'
    kinks), from second differences on a fine grid in float64. The caller's model is left as given
    (a float64, eval-mode copy is evaluated)."""
    t = torch.linspace(*t_range, resolution, dtype=torch.float64)
    points = start.double().unsqueeze(0) + t.unsqueeze(1) * direction.double().unsqueeze(0)
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        y = model(points).reshape(resolution, -1)
    step = (t[1] - t[0]).item()
    second = (y[2:] - 2 * y[1:-1] + y[:-2]).abs().amax(-1) / step  # slope change across each grid cell
    kink = second > tol * max(1.0, y.abs().max().item())
    # one kink can light up two neighbouring cells: count runs of consecutive flagged cells
    starts = kink & ~torch.cat([torch.zeros(1, dtype=torch.bool), kink[:-1]])
    return int(starts.sum().item()) + 1
