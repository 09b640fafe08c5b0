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
    print(f"{"activation":<42} {'params':>6} {'E[F^2]':>8} {'E[F_prime^2]':>12}")
    rows = [("hermite", {"degree": 3}), ("hermite", {"degree": 3, "init": "unit"}), ("hermite", {"degree": 8}),
            ("fourier", {"degree": 5}), ("tropical", {"degree": 5}), ("tropical_rational", {"degree": 5})]
    for name, kwargs in rows:
        module = orthoact.create(name, **kwargs)
        forward, backward = module.gains()
        n_params = sum(p.numel() for p in module.parameters())
        print(f"{repr(module):<42} {n_params:>6} {forward.item():>8.4f} {backward.item():>12.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthoact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print each family's initial gains")
    p.add_argument("--seed", type=int, default=0, help="seed for random inits (tropical rational)")
    p.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
