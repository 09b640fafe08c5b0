"""All the GPU work in one command: GPU tests, the activation benchmark and real training steps.

Made for one run of under 8 minutes on one H200 (its own Python with PyTorch, Triton, timm and
transformers; nothing installed). Run from the checkout:

    PYTHONPATH=src python benchmarks/gpu_check.py OUT [--budget 460]

Writes ``OUT/results.json`` and ``OUT/results.md`` after every phase, so a run stopped by its time
limit still leaves what it measured:

1. ``pytest`` of every GPU test (tests/ops/test_triton_gpu.py, tests/gpu): Triton vs the float64
   reference for every family, dtype and layout and degrees up to the kernels' limit, ``auto`` picking
   Triton, ``torch.compile(fullgraph=True)``, resume on CUDA, ``convert()`` of a bfloat16 model.
2. The activation benchmark (benchmarks/gpu_activations.py): forward+backward time, GB/s next to the
   copy bandwidth, and peak memory vs ``F.gelu`` at 16M and 256M elements, bfloat16 and float32.
3. Training steps: the owt-gpt2-124m GPT (12 x 12 x 768, block 1024, bfloat16 autocast,
   ``torch.compile``) at batch 8 for GELU, Hermite-3, Tropical-5, Fourier-5, TropicalRational-5 and
   Rational-5/4 (median of 20 steps after warm-up, peak memory, ratios to GELU); ConvNeXt-T at batch
   64 on 224x224 (GELU vs Hermite-3) and timm's ``convnext_tiny`` with GELU as a check of our model.

Every phase watches the time left and records what it skipped. ``--dry-run`` runs the logic on the CPU
with tiny shapes (no Triton benchmark) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GPT_ACTS = ["gelu", "hermite:3", "tropical:5", "fourier:5", "tropical_rational:5", "rational:5/4"]
STEP_TARGETS = {"hermite:3": 1.05, "tropical:5": 1.05, "fourier:5": 1.10, "tropical_rational:5": 1.10}


class Report:
    def __init__(self, out: Path, deadline: float) -> None:
        self.out, self.deadline = out, deadline
        self.data: dict = {"machine": machine(), "phases": {}}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.data, indent=2, default=str))
        (self.out / "results.md").write_text(markdown(self.data))


def machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def log(message: str) -> None:
    print(message, flush=True)


# -- phase 1 ---------------------------------------------------------------------------------------
def run_tests(report: Report, timeout: float) -> None:
    """The GPU test files one after the other, each with a share of the time, so a slow one (Triton
    compiles every kernel it runs) cannot take the others' results with it."""
    files = [("tests/ops/test_triton_gpu.py", 0.7), ("tests/gpu", 0.3)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    phase = {"files": [], "tests": 0, "failures": 0, "errors": 0, "skipped": 0, "failed": [], "seconds": 0.0}
    report.data["phases"]["tests"] = phase
    for path, share in files:
        xml = report.out / f"pytest-{Path(path).stem}.xml"
        start = time.monotonic()
        cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", path, f"--junitxml={xml}"]
        try:
            result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(30.0, share * timeout), env=env)
            output, code = result.stdout + result.stderr, result.returncode
        except subprocess.TimeoutExpired as error:
            raw = error.stdout or b""
            output, code = raw.decode(errors="replace") if isinstance(raw, bytes) else raw, "timeout"
        entry = {"path": path, "returncode": code, "seconds": time.monotonic() - start,
                 "tail": output.strip().splitlines()[-25:]}
        if xml.exists():
            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            for key in ("tests", "failures", "errors", "skipped"):
                entry[key] = int(suite.get(key, 0))
                phase[key] += entry[key]
            for case in suite.iter("testcase"):
                bad = case.find("failure") if case.find("failure") is not None else case.find("error")
                if bad is not None:
                    phase["failed"].append(f"{case.get('classname')}::{case.get('name')}: {(bad.get('message') or '')[:300]}")
        else:  # stopped by its time limit: count what the progress line shows
            dots = "".join(line for line in output.splitlines() if set(line.strip()) <= set(".FEsx") and line.strip())
            entry.update({"tests": len(dots), "failures": dots.count("F"), "errors": dots.count("E"),
                          "skipped": dots.count("s"), "stopped": "time limit"})
            for key in ("tests", "failures", "errors", "skipped"):
                phase[key] += entry[key]
        phase["files"].append(entry)
        phase["seconds"] += entry["seconds"]
        log(f"tests {path}: {entry.get('tests')} run, {entry.get('failures')} failed, {entry.get('errors')} errors, "
            f"{entry.get('skipped')} skipped in {entry['seconds']:.0f} s" + (" (stopped: time limit)" if code == "timeout" else ""))
        report.save()


# -- phase 2 ---------------------------------------------------------------------------------------
def run_activation_benchmark(report: Report, budget: float) -> None:
    import gpu_activations

    start = time.monotonic()
    result = gpu_activations.run([16 << 20, 256 << 20], [torch.bfloat16, torch.float32], reps=10, compile_ref=True,
                                 deadline=time.monotonic() + budget, log=log)
    result["seconds"] = time.monotonic() - start
    report.data["phases"]["activations"] = result


# -- phase 3 ---------------------------------------------------------------------------------------
def time_steps(step, steps: int, warmup: int, device) -> tuple[float, int]:
    """Median seconds of ``steps`` calls after ``warmup`` (compilation), and the peak bytes of one."""
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base if device.type == "cuda" else 0
    return statistics.median(times), peak


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gpt_step(act: str, device, dry: bool, compile_: bool):
    from orthoact.models import GPT
    from orthoact.train.lm import resolve_config
    from orthoact.train.trainer import parameter_groups

    overrides = [f"act={act}", "train.batch_size=8"]
    if dry:
        overrides += ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.block_size=32", "model.vocab_size=128",
                      "train.batch_size=2"]
    cfg = resolve_config("owt-gpt2-124m", overrides)
    m, t = cfg["model"], cfg["train"]
    torch.manual_seed(0)
    model = GPT(m).to(device)
    opt = torch.optim.AdamW(parameter_groups(model, t.weight_decay, 1.0), lr=t.lr, betas=(t.beta1, t.beta2), fused=True)
    run_model = torch.compile(model) if compile_ else model
    x = torch.randint(0, m.vocab_size, (t.batch_size, m.block_size), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            _, loss = run_model(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in model.parameters())


def convnext_step(act: str | None, device, dry: bool, compile_: bool, timm_model: bool = False):
    batch, size = (2, 64) if dry else (64, 224)
    torch.manual_seed(0)
    if timm_model:
        import timm

        model = timm.create_model("convnext_tiny", pretrained=False, num_classes=1000).to(device)
    else:
        from orthoact.models.convnext import ConvNeXt, ConvNeXtConfig

        model = ConvNeXt(ConvNeXtConfig(variant="atto" if dry else "tiny", activation=act, drop_path=0.1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, fused=True)
    run_model = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = F.cross_entropy(run_model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in model.parameters())


def run_training(report: Report, device, dry: bool) -> None:
    compile_ = device.type == "cuda"
    steps, warmup = (3, 1) if dry else (20, 3)
    phase = {"gpt": [], "convnext": [], "skipped": [], "steps": steps, "warmup": warmup, "compile": compile_}
    report.data["phases"]["training"] = phase
    jobs = [("gpt", act, lambda a=act: gpt_step(a, device, dry, compile_)) for act in GPT_ACTS]
    jobs += [("convnext", act, lambda a=act: convnext_step(a, device, dry, compile_)) for act in ("gelu", "hermite:3")]
    jobs.append(("convnext", "timm convnext_tiny (gelu)", lambda: convnext_step(None, device, dry, compile_, timm_model=True)))
    per_job = None
    for kind, name, make in jobs:
        if per_job is not None and report.left() < 1.3 * per_job:
            phase["skipped"].append(f"{kind} {name} (time)")
            continue
        started = time.monotonic()
        try:
            step, n_params = make()
            seconds, peak = time_steps(step, steps, warmup, device)
            row = {"act": name, "step_s": seconds, "peak_mib": peak / 2**20, "params": n_params}
        except Exception as error:  # noqa: BLE001 - one failed configuration must not stop the others
            row = {"act": name, "error": f"{type(error).__name__}: {str(error)[:500]}"}
        row["seconds_total"] = time.monotonic() - started
        per_job = max(per_job or 0.0, row["seconds_total"])
        phase[kind].append(row)
        log(f"{kind} {name}: " + (f"{row['step_s'] * 1e3:.1f} ms/step, peak {row['peak_mib']:.0f} MiB"
                                  if "step_s" in row else row["error"]) + f" ({row['seconds_total']:.0f} s)")
        torch.cuda.empty_cache() if device.type == "cuda" else None
        report.save()
    for kind, base_name in (("gpt", "gelu"), ("convnext", "gelu")):
        base = next((r for r in phase[kind] if r["act"] == base_name and "step_s" in r), None)
        for r in phase[kind]:
            if base and "step_s" in r:
                r["time_ratio"] = r["step_s"] / base["step_s"]
                r["mem_ratio"] = r["peak_mib"] / base["peak_mib"] if base["peak_mib"] else None


# -- report ----------------------------------------------------------------------------------------
def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [f"# GPU check: {m.get('gpu', 'no GPU')}, torch {m['torch']}, triton {m.get('triton')}", ""]
    tests = data["phases"].get("tests")
    if tests:
        lines += ["## Tests", "", f"{tests.get('tests')} run, {tests.get('failures')} failed, {tests.get('errors')} errors, "
                  f"{tests.get('skipped')} skipped ({tests['seconds']:.0f} s)."]
        lines += [f"- {f['path']}: stopped by the time limit after {f['tests']} tests" for f in tests.get("files", [])
                  if f.get("stopped")] + [""]
        lines += [f"- FAILED {f}" for f in tests.get("failed", [])] + [""]
    acts = data["phases"].get("activations")
    if acts:
        lines += ["## Activations (forward+backward, Triton)", "",
                  "| config | elements | dtype | bound ms | ms | of bound | GB/s | / GELU | peak / GELU |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in acts["rows"]:
            if r["provider"] == "triton":
                lines.append(f"| {r['config']} | {r['numel'] >> 20}M | {r['dtype'][6:]} | {r['bound_ms']:.3f} | {r['ms']:.3f} | "
                             f"{r['bound_fraction']:.2f} | {r['gbps']:.0f} | {r['ratio']:.2f} | {r['mem_ratio']:.2f} |")
        lines += ["", "Copy bandwidth: " + ", ".join(f"{c['numel'] >> 20}M {c['dtype'][6:]} {c['copy_gbps']:.0f} GB/s"
                                                      for c in acts["copy"]), ""]
        lines += [f"- target {v['config']} {v['numel'] >> 20}M {v['dtype'][6:]}: time {v['ratio']:.2f} (<= {v['target']}), "
                  f"of bound {v['bound_fraction']:.2f}, memory {v['mem_ratio']:.2f} (<= 1.1): {'met' if v['met'] else 'NOT met'}"
                  for v in acts["targets"]]
        lines.append("")
    training = data["phases"].get("training")
    if training:
        for kind, title in (("gpt", "GPT-2 124M, batch 8 x 1024, bfloat16, torch.compile"),
                            ("convnext", "ConvNeXt-T, batch 64 x 224 x 224, bfloat16, torch.compile")):
            lines += [f"## {title}", "", "| activation | ms/step | / GELU | peak MiB | / GELU | parameters |", "|---|---|---|---|---|---|"]
            for r in training[kind]:
                if "step_s" in r:
                    lines.append(f"| {r['act']} | {r['step_s'] * 1e3:.1f} | {r.get('time_ratio', float('nan')):.3f} | "
                                 f"{r['peak_mib']:.0f} | {(r.get('mem_ratio') or float('nan')):.3f} | {r['params']:,} |")
                else:
                    lines.append(f"| {r['act']} | error: {r['error']} | | | | |")
            lines.append("")
        if training["skipped"]:
            lines += ["Skipped for time: " + ", ".join(training["skipped"]), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder for results.json, results.md and pytest.xml")
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for everything (default 460)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tests", "activations", "training"])
    parser.add_argument("--dry-run", action="store_true", help="check the script on the CPU with tiny shapes")
    args = parser.parse_args()
    start = time.monotonic()
    report = Report(Path(args.out), start + args.budget)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    log(f"gpu check on {report.data['machine']}")
    if "tests" not in args.skip:
        run_tests(report, timeout=min(200.0, 0.45 * args.budget))
        report.save()
    if "activations" not in args.skip and device.type == "cuda":
        run_activation_benchmark(report, budget=min(110.0, report.left() * 0.35))
        report.save()
    if "training" not in args.skip:
        run_training(report, device, args.dry_run)
        report.save()
    log(f"\n{markdown(report.data)}\nwrote {report.out / 'results.md'} in {time.monotonic() - start:.0f} s")
    tests = report.data["phases"].get("tests", {})
    return 0 if not tests or (tests.get("failures", 0) == 0 and tests.get("errors", 0) == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
