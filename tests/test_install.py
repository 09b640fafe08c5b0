"""Install as users do: the README's wheel-install block, run in a copy of the checkout, gives a
virtual environment where every family's forward and backward runs on the fused CPU path (compiled
from the sources shipped in the wheel) and matches the float64 reference, from a folder that is not
the checkout."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SMOKE = textwrap.dedent("""
    import json, sys, torch, orthoact
    assert "site-packages" in orthoact.__file__, orthoact.__file__   # the wheel, not the checkout
    info = orthoact.ops.load_fused_kernels()
    assert info.error is None and info.compiled, info
    out = {}
    torch.manual_seed(0)  # torch seeds itself at random otherwise
    for family in orthoact.family_names():
        act = orthoact.create(family)
        ref = orthoact.create(family, backend="reference").double()  # the float64 reference
        ref.load_state_dict(act.state_dict())
        x = torch.randn(4096, requires_grad=True)
        y = act(x)
        assert "fused_forward" in type(y.grad_fn).__name__, (family, y.grad_fn)
        y.sum().backward()
        xr = x.detach().double().requires_grad_()
        yr = ref(xr)
        yr.sum().backward()
        torch.testing.assert_close(y, yr.float(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x.grad, xr.grad.float(), rtol=1e-4, atol=1e-4)
        for p, q in zip(act.parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad.float(), rtol=1e-3, atol=1e-3)
        out[family] = "ok"
    print(json.dumps(out))
""")


def readme_install_block() -> str:
    text = README.read_text()
    match = re.search(r"<!-- install-test -->\s*```bash\n(.*?)```", text, flags=re.S)
    assert match, "README.md lacks the wheel-install block marked <!-- install-test -->"
    return match.group(1)


def test_readme_has_the_install_block():
    block = readme_install_block()
    assert "pip wheel" in block and "orthoact-env/bin/pip install -q dist/orthoact-" in block


@pytest.mark.slow
def test_wheel_install_from_the_readme(tmp_path):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    checkout = tmp_path / "checkout"
    for name in files:
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # a python3 for the block
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_install_block()], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    python = checkout / "orthoact-env" / "bin" / "python"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["ORTHOACT_CACHE_DIR"] = str(tmp_path / "kernel-cache")  # compile from the wheel's sources
    smoke = subprocess.run([str(python), "-c", SMOKE], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert smoke.stdout.strip().splitlines()[-1].count('"ok"') == len(__import__("orthoact").family_names())
