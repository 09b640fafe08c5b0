"""Fitting benchmark: time and error of orthoact.fit for each family, next to torchortho 0.1.2.

    python benchmarks/fit_activations.py                  # orthoact fits + torchortho's default init
    python benchmarks/fit_activations.py --torchortho-fit # also torchortho's own fitted init (act_init:
                                                           # up to 40,000 Adam steps each; minutes)

Errors are max |F - f| and max |F' - f'| on a 10,001-point grid of [-sqrt(n), sqrt(n)] (the paper's
fitting domain); fit times are medians of 5 calls after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import orthoact
from orthoact.targets import TARGETS

CONFIGS = [("hermite", 8), ("hermite", 3), ("fourier", 5), ("tropical", 5), ("tropical_rational", 5), ("rational", (5, 4))]
# Every declared family is fitted: one not listed above at its default degree.
CONFIGS += [(s.name, s.default_degree) for s in orthoact.declarations.specs() if s.name not in {f for f, _ in CONFIGS}]
TORCHORTHO = {"hermite": "HermiteActivation", "fourier": "FourierActivation",
              "tropical": "TropicalActivation", "tropical_rational": "TropicalRationalActivation"}


def errors(module, target: str, degree) -> tuple[float, float]:
    """Max errors of value and derivative on the fit's default domain ([-sqrt n, sqrt n]; [-3, 3] for
    a rational function)."""
    lim = 3.0 if isinstance(degree, tuple) else math.sqrt(degree)
    x = torch.linspace(-lim, lim, 10001, dtype=torch.float64).requires_grad_()
    module = module.double()
    y = module(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    xf = x.detach().clone().requires_grad_()
    f = TARGETS[target](xf)
    (df,) = torch.autograd.grad(f.sum(), xf)
    return (y - f).abs().max().item(), (dy - df).abs().max().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torchortho-fit", action="store_true")
    parser.add_argument("--out", default="bench_results/fit_activations.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    orthoact.fit("gelu", "hermite", 3)  # warm-up (imports, first lstsq)
    try:
        import torchortho
    except ImportError:
        torchortho = None

    rows = []
    print(f"{'fit':<26}{'ms':>9}{'max |F-f|':>12}{'max |dF-df|':>13}   {'torchortho':<26}{'s':>8}{'max |F-f|':>12}{'max |dF-df|':>13}")
    for family, degree in CONFIGS:
        for target in ("gelu", "silu"):
            times = []
            for _ in range(5):
                start = time.perf_counter()
                module, report = orthoact.fit(target, family, degree)
                times.append(time.perf_counter() - start)
            err, derr = errors(module, target, degree)
            row = {"family": family, "degree": degree, "target": target, "fit_ms": statistics.median(times) * 1e3,
                   "max_error": err, "max_derivative_error": derr}
            other = ""
            if torchortho is not None and family in TORCHORTHO:
                cls = getattr(torchortho, TORCHORTHO[family])
                torch.manual_seed(0)
                start = time.perf_counter()
                if args.torchortho_fit and family != "tropical":
                    fn = TARGETS[target]
                    old = cls(degree, act_init=fn, load_cached=False)
                    label = "torchortho act_init fit"
                else:
                    old = cls(degree)
                    label = "torchortho default init"
                seconds = time.perf_counter() - start
                t_err, t_derr = errors(orthoact.from_torchortho(old), target, degree)
                row.update({"torchortho": label, "torchortho_s": seconds, "torchortho_max_error": t_err,
                            "torchortho_max_derivative_error": t_derr})
                other = f"{label:<26}{seconds:>8.2f}{t_err:>12.3g}{t_derr:>13.3g}"
            rows.append(row)
            name = f"{module.label()} {target}"
            print(f"{name:<26}{row['fit_ms']:>9.1f}{err:>12.3g}{derr:>13.3g}   {other}", flush=True)

    h8 = next(r for r in rows if r["family"] == "hermite" and r["degree"] == 8 and r["target"] == "gelu")
    ok = h8["max_error"] <= 2e-3 and h8["fit_ms"] <= 50
    print(f"\ntarget: Hermite-8 fit of GELU on [-sqrt 8, sqrt 8]: max error {h8['max_error']:.2e} (<= 2e-3), "
          f"{h8['fit_ms']:.1f} ms (<= 50 ms): {'met' if ok else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
