"""The ``orthoact`` command line."""

from __future__ import annotations

import argparse
import sys

import torch

import orthoact


def _summary(args: argparse.Namespace) -> int:
    """Print each family's parameters and exact Gaussian gains at its default initialisation."""
    torch.manual_seed(args.seed)
    print("orthoact", orthoact.__version__, "- initial Gaussian gains, x ~ N(0, 1)")
    print(f"{'activation':<42} {'params':>6} {'E[F^2]':>8} {'E[F_prime^2]':>12}")
    rows = [("hermite", {"degree": 3}), ("hermite", {"degree": 3, "init": "unit"}), ("hermite", {"degree": 8}),
            ("fourier", {"degree": 5}), ("tropical", {"degree": 5}), ("tropical_rational", {"degree": 5})]
    for name, kwargs in rows:
        module = orthoact.create(name, **kwargs)
        forward, backward = module.gains()
        n_params = sum(p.numel() for p in module.parameters())
        print(f"{repr(module):<42} {n_params:>6} {forward.item():>8.4f} {backward.item():>12.4f}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    """Fit a family to a named activation; print the parameters and the errors (and plot them)."""
    kwargs = {}
    if args.fixed_frequencies:
        kwargs["learn_frequencies"] = False
    module, report = orthoact.fit(args.target, args.family, args.degree, domain=args.domain, **kwargs)
    print(report)
    for name, value in module.state_dict().items():
        values = ", ".join(f"{v:.8g}" for v in value.reshape(-1).tolist())
        print(f"{name} = [{values}]")
    if args.plot:
        from orthoact.analysis.plots import plot_fit

        plot_fit(module, args.target, report.domain, args.plot)
        print(f"wrote {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthoact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print each family's initial gains")
    p.add_argument("--seed", type=int, default=0, help="seed for random inits (tropical rational)")
    p.set_defaults(func=_summary)

    p = sub.add_parser("fit", help="fit a family to a classical activation (least squares, milliseconds)")
    p.add_argument("target", help="gelu, silu, relu, tanh, sigmoid, mish, leaky_relu, elu, softplus, gelu_tanh")
    p.add_argument("--family", default="hermite", choices=orthoact.FAMILIES)
    p.add_argument("--degree", type=int, default=None, help="default: the family's default degree")
    p.add_argument("--domain", type=float, nargs=2, metavar=("LOW", "HIGH"), help="default: [-sqrt(n), sqrt(n)]")
    p.add_argument("--fixed-frequencies", action="store_true", help="Fourier: keep w_k = k")
    p.add_argument("--plot", metavar="PATH", help="draw target vs fit and their derivatives (PNG or SVG)")
    p.set_defaults(func=_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
