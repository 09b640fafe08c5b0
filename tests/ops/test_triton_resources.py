"""The Triton kernels as a Hopper GPU would get them, without a GPU: every default-degree kernel
compiles for sm_90 (as the launcher configures it: the report and the launcher share
orthoact.ops.triton_config) with no spill, and within the register targets of issue 20. float32 and
the two extreme input maps here; ``benchmarks/triton_resources.py`` compiles every dtype, map,
degree and sm_80 too."""

import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "triton_resources.py"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


def _report(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # the pool's processes import it by name
    import triton_resources

    return triton_resources


def test_default_degree_kernels_compile_for_sm90_without_spills(monkeypatch):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    report = _report(monkeypatch)
    try:
        report.cuobjdump()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    todo = [c for c in report.cases(quick=True) if c.dtype == "float32" and c.grads in ("-", "dx+dp", "dx+dp+y")
            and c.inputs in ("none", "clamp+domain" if c.family in ("hermite", "fourier", "rational") else "clamp")]
    variants = {c.variant for c in todo}
    assert {"hermite", "fourier", "tropical", "tropical_rational", "rational(version=A)", "rational(version=B)"} <= variants
    # compiled, not interpreted (the other Triton tests run the interpreter): fresh processes without it
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(report.compile_case, todo))
    problems = [f"{r.variant} {r.pass_} {r.layout} {r.inputs}: {r.error or report.verdict(r)}" for r in rows
                if r.error or r.spill_bytes or r.registers > report.TARGETS[r.pass_]]
    assert not problems, "\n".join(problems)
