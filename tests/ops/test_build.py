"""Building and loading the fused kernels never breaks a forward: every failure warns once and the
auto backend uses the reference; a corrupt cache entry is rebuilt; a cache folder other users can
write to is never loaded from."""

import re
import stat
import warnings
from pathlib import Path

import pytest
import torch

import orthoact
from orthoact import backends
from orthoact.ops import _build


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No kernels loaded yet in this process's view, no warnings given yet, a private cache folder."""
    monkeypatch.setattr(_build, "_infos", {})
    monkeypatch.setattr(backends, "_warned", set())
    monkeypatch.setenv("ORTHOACT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def forward_falls_back(match: str) -> None:
    """The auto backend warns once (naming the failure) and gives the reference's values."""
    act = orthoact.Hermite(3)
    x = torch.randn(100)
    with pytest.warns(RuntimeWarning, match=match):
        y = act(x)
    act.backend = "reference"
    torch.testing.assert_close(y, act(x))
    act.backend = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        act(x)  # once only


def test_missing_sources(fresh, monkeypatch):
    monkeypatch.setattr(_build, "KERNEL_DIR", fresh / "nowhere")
    fresh.joinpath("nowhere").mkdir()
    forward_falls_back("kernels.cpp is missing")
    with pytest.raises(RuntimeError, match="backend='fused' cannot run hermite on this input: building the fused kernels failed"):
        orthoact.Hermite(3, backend="fused")(torch.randn(3))


def test_no_compiler(fresh, monkeypatch):
    monkeypatch.setattr(_build.shutil, "which", lambda name: None)
    forward_falls_back(re.escape("no C++ compiler found (install g++ or set CXX)"))


def fake_compiler(folder, body: str) -> str:
    path = folder / "fake-g++"
    path.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo fake 1.0; exit 0; fi\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_compiler_that_fails(fresh, monkeypatch):
    monkeypatch.setenv("CXX", fake_compiler(fresh, "echo 'fatal error: No space left on device' >&2; exit 1"))
    forward_falls_back("compiling the fused kernels failed: fatal error: No space left on device")


def test_compiler_that_hangs_is_stopped(fresh, monkeypatch):
    monkeypatch.setenv("CXX", fake_compiler(fresh, "sleep 60"))
    monkeypatch.setenv(_build.BUILD_TIMEOUT_ENV, "1")
    forward_falls_back("compiling the fused kernels took longer than 1 s")


def test_unsafe_cache_folders_are_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    folder, reason = _build._usable_cache(shared)
    assert folder is None and "writable by other users" in reason
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert _build._usable_cache(a_file)[0] is None
    assert _build._usable_cache(a_file / "below")[0] is None
    assert _build._usable_cache(tmp_path / "fresh")[0] == tmp_path / "fresh"
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
    library = tmp_path / "fresh" / "kernels-x.so"
    library.write_bytes(b"\x7fELF")
    library.chmod(0o666)
    with pytest.raises(OSError, match="writable by other users"):
        _build._open(library)


def test_unwritable_cache_builds_privately(fresh, monkeypatch):
    """A cache path that cannot be created (here under /proc, read-only even for root) still gives
    working kernels, built in a private temporary folder, with one warning."""
    monkeypatch.setenv("ORTHOACT_CACHE_DIR", "/proc/orthoact-cache")
    with pytest.warns(RuntimeWarning, match="private temporary folder"):
        info = _build.library("hermite")
    assert info.library is not None and info.error is None and info.compiled
    assert stat.S_IMODE(info.path.parent.stat().st_mode) == 0o700
    x = torch.randn(1000)
    torch.testing.assert_close(orthoact.Hermite(3, backend="fused")(x), orthoact.Hermite(3, backend="reference")(x))


def test_truncated_cached_library_is_rebuilt(fresh, monkeypatch):
    """A cached library cut in half (a crash or a full disk while copying) is detected by its hash
    before it is loaded (loading it would crash the process), rebuilt, and the forward runs on the
    fused kernels."""
    key = _build._key(_build._compiler(), "tropical", _build.families_inc("tropical"))
    monkeypatch.delenv("ORTHOACT_CACHE_DIR")
    real = _build._cached(_build.cache_dir() / f"kernels-tropical-{key}.txt")  # the default cache, from earlier runs
    data = real.read_bytes() if real is not None else b"\x7fELF" + bytes(8192)
    cache = fresh / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("ORTHOACT_CACHE_DIR", str(cache))
    library = cache / (real.name if real is not None else f"kernels-tropical-{key}-0123456789abcdef.so")
    library.write_bytes(data[: len(data) // 2])
    library.chmod(0o700)
    (cache / f"kernels-tropical-{key}.txt").write_text(library.name)
    info = _build.library("tropical")
    assert info.error is None and info.compiled, info
    assert info.path.stat().st_size > len(data) // 2
    x = torch.randn(1000, requires_grad=True)
    y = orthoact.Tropical(5, backend="fused")(x)
    assert "fused_forward" in type(y.grad_fn).__name__
    torch.testing.assert_close(y, orthoact.Tropical(5, backend="reference")(x))
    # the next process loads the rebuilt library from the cache
    monkeypatch.setattr(_build, "_infos", {})
    again = _build.library("tropical")
    assert again.error is None and not again.compiled and again.path == info.path


def test_bad_vector_width_setting_falls_back(fresh, monkeypatch):
    monkeypatch.setenv(_build.VECTOR_BITS_ENV, "128")
    forward_falls_back(re.escape("ORTHOACT_KERNEL_VECTOR_BITS='128': expected 256 or 512"))


def test_vector_width_setting_is_part_of_the_cache_key(monkeypatch):
    monkeypatch.setenv(_build.VECTOR_BITS_ENV, "256")
    assert "-DOA_NO_AVX512" in _build.flags()
    compiler = _build._compiler()
    narrow = _build._key(compiler, "hermite", _build.families_inc("hermite"))
    monkeypatch.delenv(_build.VECTOR_BITS_ENV)
    assert "-DOA_NO_AVX512" not in _build.flags()
    assert _build._key(compiler, "hermite", _build.families_inc("hermite")) != narrow


@pytest.mark.slow
def test_a_library_built_from_other_sources_is_swapped_in_and_out(fresh):
    """build_from compiles another copy of the kernel sources (benchmarks/kernel_ab.py compares two
    versions with it) and swap puts it in use and back: a copy whose Tropical forward is scaled by 2
    gives twice the values while it is in use, the original's after."""
    import shutil

    act = orthoact.Tropical(5, backend="fused")
    x = torch.randn(4099)
    expected = act(x)
    source = fresh / "kernels"
    shutil.copytree(_build.KERNEL_DIR, source)
    header = source / "tropical.h"
    text = header.read_text()
    assert text.count("return scale_of(aux) * best;") == 1
    header.write_text(text.replace("return scale_of(aux) * best;", "return T(2) * scale_of(aux) * best;"))
    info = _build.build_from("tropical", source, fresh / "lib")
    assert info.error is None and info.library is not None and info.compiled
    previous = _build.swap("tropical", info)
    try:
        torch.testing.assert_close(act(x), 2 * expected)
    finally:
        assert _build.swap("tropical", previous) is info
    torch.testing.assert_close(act(x), expected)
    missing = _build.build_from("tropical", fresh / "nowhere", fresh / "lib")
    assert missing.library is None and "kernels.cpp is missing" in missing.error


def test_kernel_ab_times_the_kernels_on_their_own(monkeypatch):
    """benchmarks/kernel_ab.py --kernel-only runs a library's kernels on buffers of its own: what they
    hold is the module's fused forward and backward (values, input gradient, parameter gradients)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import kernel_ab

    torch.manual_seed(0)
    act = orthoact.Fourier(3, backend="fused", learn_frequencies=False)
    x, dy = torch.randn(4099), torch.randn(4099)
    step = kernel_ab.kernel_step(act, x, dy)
    forward, backward = step(_build.library("fourier").library)
    assert forward > 0 and backward > 0
    y, dx, dparams = step.outputs
    xg = x.clone().requires_grad_()
    act(xg).backward(dy)
    assert torch.equal(y, act(x).detach()) and torch.equal(dx, xg.grad)
    grads = dparams.split([t.shape[1] for t in act.tensors()], dim=1)
    for name, grad in zip(act.spec.param_names, grads):
        parameter = getattr(act, name)
        if parameter.requires_grad:
            torch.testing.assert_close(grad.float(), parameter.grad, rtol=0, atol=0)


def test_a_row_of_the_wrong_width_is_refused():
    """Fourier's kernels read their extra prepared columns at offsets fixed by the degree (3n + 1 own
    columns): a row of another width gets status 3, not a read past it; with a clamp limit the width
    is one more."""
    lib = _build.library("fourier").library
    x, y = torch.randn(64), torch.empty(64)
    for columns, flags, status in ((16, 0, 0), (17, 0, 3), (15, 0, 3), (17, 1, 0), (16, 1, 3)):
        params = torch.rand(1, columns)
        assert lib.oa_forward(0, 0, x.data_ptr(), y.data_ptr(), 64, 64, 1, params.data_ptr(), 5, columns, 1, flags,
                              0.0, 0.0) == status, (columns, flags)
        dx, dparams = torch.empty(64), torch.zeros(1, columns, dtype=torch.float64)
        assert lib.oa_backward(0, 0, x.data_ptr(), y.data_ptr(), dx.data_ptr(), dparams.data_ptr(), 64, 64, 1,
                               params.data_ptr(), 5, columns, 1, flags, 0.0, 0.0, 0, None) == status, (columns, flags)
