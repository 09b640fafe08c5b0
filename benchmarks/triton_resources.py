"""Registers, spills, shared memory and compile time of every Triton kernel, for a GPU that is not here.

Triton compiles for a GPU target without one (``triton.compile(ASTSource(...), target=GPUTarget("cuda",
90, 32))``); the ``cuobjdump`` shipped in Triton's wheel reads the compiled binary's resource usage.
Every kernel is compiled as the launcher launches it: its tiles and warps from
``orthoact.ops.triton_config`` (the launcher's own module), its arguments typed as a launch of 16-byte
aligned tensors with 32-bit sizes specialises them, for every family variant (both rational
versions), forward and backward, the runs and rows layouts, backward with and without dx and
parameter gradients, float32 / bfloat16 / float16 inputs, degrees 1, the family's default, 8, 16 and
the kernels' maximum, input maps (none, clamp, domain, both) at the default degree, sm_80 and sm_90.

    python benchmarks/triton_resources.py                 # everything (a long run: a few thousand kernels)
    python benchmarks/triton_resources.py --quick         # default degrees, sm_90
    python benchmarks/triton_resources.py --json out.json --jobs 2

Targets (issue 20): 0 spill bytes; forward <= 64 and backward <= 128 registers per thread; compile
<= 10 s, for every kernel up to degree 16. ``TRITON_CACHE_DIR`` is honoured as by any Triton program
(compile seconds are only meaningful from an empty cache).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
ARCHS = (80, 90)
TARGETS = {"forward": 64, "backward": 128}
TARGET_SECONDS = 10.0
TARGET_DEGREE = 16  # the register, spill and compile targets hold up to this degree


@dataclass(frozen=True)
class Case:
    family: str
    variant: str  # the family and its options, e.g. "rational(version=B)"
    code: int  # kernel code (orthoact.ops.kernel_table)
    pass_: str  # forward | backward
    layout: str  # runs | rows
    grads: str  # backward: "dx+dp", "dx", "dp", "dx+dp+y" (the value too); forward: "-"
    dtype: str
    degree: int
    inputs: str  # none | clamp | domain | clamp+domain
    arch: int


@dataclass
class Row:
    family: str
    variant: str
    pass_: str
    layout: str
    grads: str
    dtype: str
    degree: int
    inputs: str
    arch: int
    registers: int | None
    spill_bytes: int | None
    shared_bytes: int | None
    programs_per_sm: int | None
    compile_s: float
    error: str = ""


def cases(quick: bool, families: list[str] | None = None, dtypes: list[str] | None = None) -> list[Case]:
    import orthoact
    from orthoact.ops._common import MAX_KERNEL_DEGREE

    out = []
    for code, entry in orthoact.ops.kernel_table().items():
        spec = entry.spec
        if entry.kernel.triton_module is None or (families and spec.name not in families):
            continue
        variant = spec.name + ("(" + ", ".join(f"{k}={v}" for k, v in entry.options.items()) + ")" if entry.options else "")
        default = spec.kernel_degree(spec.default_degree)
        degrees = [default] if quick else sorted({1, default, 8, 16, MAX_KERNEL_DEGREE})
        maps = ["none", "clamp"] + (["domain", "clamp+domain"] if spec.derivative is not None else [])
        archs = (90,) if quick else ARCHS
        for arch in archs:
            for degree in degrees:
                for inputs in (maps if degree == default else ["none"]):
                    for dtype in dtypes or DTYPES:
                        for layout in ("runs", "rows"):
                            out.append(Case(spec.name, variant, code, "forward", layout, "-", dtype, degree, inputs, arch))
                            for grads in ("dx+dp", "dx", "dp", "dx+dp+y"):
                                out.append(Case(spec.name, variant, code, "backward", layout, grads, dtype, degree, inputs,
                                                arch))
    return out


def _columns(spec, degree: int) -> int:
    """The packed parameters of a kernel degree (a rational function's numerator; its denominator m - 1)."""
    values = (degree, max(1, degree - 1)) if len(spec.degree_args) == 2 else degree
    return sum(spec.columns(values).values())


def compile_case(case: Case) -> Row:
    """Compile one kernel for its target and read its resources from the binary."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from orthoact.ops import kernel_table
    from orthoact.ops import triton as launcher
    from orthoact.ops import triton_config as config
    from orthoact.ops.kernels import triton_common

    entry = kernel_table()[case.code]
    fwd, fwd_d, bwd, _, _, nan_at_inf, elements, value = launcher.family_kernels(case.code)
    p = _columns(entry.spec, case.degree)
    clamp = "clamp" in case.inputs
    domain = "domain" in case.inputs
    stride = p + clamp
    t = config.tiles(case.pass_, elements, domain or clamp)
    elem = DTYPES[case.dtype]
    rows = case.layout == "rows"
    common = dict(NAN_AT_INF=nan_at_inf, DEGREE=case.degree, P=p, CLAMP=clamp, DOMAIN=domain, ROWS_LAYOUT=rows,
                  BLOCK=t.block, ROWS=t.rows, COLS=t.cols)
    if case.pass_ == "forward":
        kernel = triton_common.forward_kernel
        pointers = {"x_ptr": f"*{elem}", "y_ptr": f"*{elem}", "params_ptr": "*fp32"}
        scalars = ["N", "block_len", "groups", "tiles_per_run", "period", "n_rows"]
        floats = ["aux", "lo", "hi"]
        constexprs = dict(FWD=fwd, FWD_D=fwd_d or fwd, **common)
    else:
        kernel = triton_common.backward_kernel
        pointers = {"x_ptr": f"*{elem}", "g_ptr": f"*{elem}", "dx_ptr": f"*{elem}", "y_ptr": f"*{elem}",
                    "params_ptr": "*fp32", "partial_ptr": "*fp32"}
        scalars = ["N", "block_len", "groups", "tiles_per_run", "tiles_per_group", "period", "n_rows", "n_row_blocks"]
        floats = ["aux", "lo", "hi"]
        constexprs = dict(BWD=bwd, VALUE=value, P_PAD=config.p_pad(stride), NEED_DX="dx" in case.grads.split("+"),
                          NEED_DP="dp" in case.grads.split("+"), WANT_Y="y" in case.grads.split("+"), **common)
    signature = {**pointers, **{name: "i32" for name in scalars}, **{name: "fp32" for name in floats}}
    signature.update({name: "constexpr" for name in constexprs})
    names = kernel.arg_names
    # as a launch specialises: 16-byte aligned tensors; the element count a multiple of 16
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in [*pointers, "N"]}
    start = time.perf_counter()
    try:
        try:
            source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
        except TypeError:  # Triton 3.2-3.3: constants by name, alignment attributes in another form (left out)
            source = ASTSource(fn=kernel, signature=signature, constants=constexprs)
        compiled = triton.compile(source,
                                  target=GPUTarget("cuda", case.arch, 32),
                                  options={"num_warps": t.num_warps, "enable_fp_fusion": config.FP_FUSION})
        seconds = time.perf_counter() - start
        registers, stack, shared = resources(compiled.asm["cubin"])
        shared = max(shared, getattr(compiled.metadata, "shared", 0) or 0)
        threads = 32 * t.num_warps
        per_sm = min(65536 // max(1, registers * threads), 2048 // threads, 32) if registers else None
        return Row(case.family, case.variant, case.pass_, case.layout, case.grads, case.dtype, case.degree, case.inputs,
                   case.arch, registers, stack, shared, per_sm, seconds)
    except Exception as error:  # noqa: BLE001 - a kernel that does not compile is a row of the table
        return Row(case.family, case.variant, case.pass_, case.layout, case.grads, case.dtype, case.degree, case.inputs,
                   case.arch, None, None, None, None, time.perf_counter() - start, f"{type(error).__name__}: {error}"[:300])


def cuobjdump() -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (Triton's wheel ships it)")
    return str(path)


def resources(cubin: bytes) -> tuple[int, int, int]:
    """(registers per thread, stack frame bytes, shared memory bytes) of a cubin's kernel."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([cuobjdump(), "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", text))
    return int(fields["REG"]), int(fields["STACK"]) + int(fields.get("LOCAL", 0)), int(fields["SHARED"])


def verdict(row: Row) -> str:
    if row.error:
        return "DOES NOT COMPILE"
    if row.degree > TARGET_DEGREE:
        return "(beyond the targets' degrees)"
    problems = []
    if row.spill_bytes:
        problems.append(f"spills {row.spill_bytes} B")
    if row.registers > TARGETS[row.pass_]:
        problems.append(f"{row.registers} > {TARGETS[row.pass_]} registers")
    if row.compile_s > TARGET_SECONDS:
        problems.append(f"compile {row.compile_s:.1f} s")
    return "NOT met: " + ", ".join(problems) if problems else "met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the default degrees, for sm_90")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiles at once (default: CPU count)")
    parser.add_argument("--family", action="append", help="only these families (repeatable)")
    parser.add_argument("--dtype", action="append", choices=list(DTYPES), help="only these input dtypes (repeatable)")
    args = parser.parse_args()
    todo = cases(args.quick, args.family, args.dtype)
    print(f"{len(todo)} kernels to compile ({args.jobs} at a time); TRITON_CACHE_DIR={os.environ.get('TRITON_CACHE_DIR', '(default)')}",
          flush=True)
    header = (f"{'variant':<24}{'pass':<9}{'layout':<6}{'grads':<8}{'dtype':<9}{'deg':>4} {'inputs':<13}{'sm':>3}"
              f"{'regs':>6}{'spill B':>8}{'smem B':>8}{'prog/SM':>8}{'compile s':>10}  target")
    print(header)
    rows = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for row in pool.map(compile_case, todo):
            rows.append(row)
            cells = (f"{row.variant:<24}{row.pass_:<9}{row.layout:<6}{row.grads:<8}{row.dtype:<9}{row.degree:>4} "
                     f"{row.inputs:<13}{row.arch:>3}")
            if row.error:
                print(cells + f"  {row.error}", flush=True)
            else:
                print(cells + f"{row.registers:>6}{row.spill_bytes:>8}{row.shared_bytes:>8}{row.programs_per_sm:>8}"
                      f"{row.compile_s:>10.1f}  {verdict(row)}", flush=True)
    within = [r for r in rows if r.degree <= TARGET_DEGREE]
    failed = [r for r in within if verdict(r) != "met"]
    print(f"\n{len(rows)} kernels in {time.perf_counter() - start:.0f} s; up to degree {TARGET_DEGREE}: "
          f"{len(within) - len(failed)} of {len(within)} meet every target"
          + (f"; max registers forward {max((r.registers or 0) for r in within if r.pass_ == 'forward')}, backward "
             f"{max((r.registers or 0) for r in within if r.pass_ == 'backward')}; max spill "
             f"{max((r.spill_bytes or 0) for r in within)} B; max compile {max(r.compile_s for r in within):.1f} s"
             if within else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(r) | {"pass": r.pass_} for r in rows], indent=1))
        print(f"wrote {args.json}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
