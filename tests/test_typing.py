"""Type checkers see the public names (the package ships py.typed): mypy accepts a user script and
flags a misspelt name."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest

USER_SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn

    import orthoact
    import orthoact.functional as OF

    act: orthoact.Hermite = orthoact.Hermite(3)
    y: torch.Tensor = act(torch.randn(4, 16))
    forward_gain, backward_gain = act.gains()
    model = nn.Sequential(nn.Linear(16, 64), orthoact.create("fourier:5"), orthoact.Tropical(5, groups=8, channel_dim=1))
    fitted, report = orthoact.fit("gelu", "hermite", 8)
    student, conversion = orthoact.convert(model, "rational", (5, 4), strict=False)
    z: torch.Tensor = OF.hermite(torch.linspace(-1, 1, 3), torch.tensor([[0.0, 1.0, 0.5]]))
    names: tuple[str, ...] = orthoact.family_names()
    base: type[orthoact.BasisActivation] = orthoact.modules.BasisActivation
    polynomial = orthoact.analysis.to_polynomial
""")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_mypy_sees_the_public_names(tmp_path):
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    (tmp_path / "typo.py").write_text("import orthoact\n\northoact.Hermitt(3)\n")
    command = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
               "--cache-dir", str(tmp_path / "cache")]
    good = subprocess.run([*command, "user.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    typo = subprocess.run([*command, "typo.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert typo.returncode == 1 and 'Module has no attribute "Hermitt"; maybe "Hermite"?' in typo.stdout, typo.stdout
