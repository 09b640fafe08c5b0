"""Checkpoints written atomically (temporary file + rename) and read without unpickling code."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from orthoact._io import write_atomic


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` through :func:`orthoact._io.write_atomic`: a crash mid-write never leaves a
    truncated checkpoint at ``path``."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated, not a checkpoint, or holding code objects
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
