"""Checkpoints written atomically (temporary file + rename) and read without unpickling code."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets it, briefly
    process-wide, which a thread creating a file at that moment would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a crash mid-write never
    leaves a truncated checkpoint at ``path``. The file gets the permissions of any new file (the
    umask), and the folder is synced so the rename itself survives a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a platform without directory fds: the rename is still atomic
        return
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, not a checkpoint, or holding code objects
        raise ValueError(f"checkpoint {path} is corrupt or unreadable ({type(error).__name__}: {error})") from None


def load_run(run: str | Path, kind: str, map_location="cpu") -> dict:
    """The checkpoint of a run folder (or a ckpt.pt path), checked to be of ``kind`` (lm / image)."""
    path = Path(run)
    path = path / "ckpt.pt" if path.is_dir() else path
    state = load(path, map_location=map_location)
    found = state.get("config", {}).get("kind")
    if found != kind:
        raise ValueError(f"{path} is not a{'n' if kind[0] in 'aeiou' else ''} {kind} run (kind={found!r})")
    return state


def rng_state() -> dict:
    """Every random generator a training step may touch, in weights_only-loadable types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
        "python_version": random.getstate()[0],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((state["python_version"], tuple(py[:-1]), py[-1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
