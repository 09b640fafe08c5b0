"""Saving and loading converted models: a small JSON description of the converted sites beside a
``safetensors`` file of every weight (no pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from orthoact import declarations
from orthoact._io import write_atomic
from orthoact.activation import BasisActivation
from orthoact.conversion.sites import site_of, surrounding_placement

__all__ = ["converted_sites", "apply_sites", "save_converted", "load_converted"]

FORMAT = "orthoact-conversion"
FORMAT_VERSION = 1
DESCRIPTION_FILE = "orthoact.json"
WEIGHTS_FILE = "model.safetensors"


def converted_sites(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: {"family": ..., "config": ...}}`` of every orthoact activation in ``model``:
    everything needed to rebuild their structure (the values live in the state dict)."""
    return {name: {"family": m.family, "config": m.config()}
            for name, m in model.named_modules() if isinstance(m, BasisActivation)}


def apply_sites(model: nn.Module, sites: Mapping[str, Mapping]) -> nn.Module:
    """Put a fresh orthoact activation of the recorded structure at every site of ``model`` (in place),
    on the device and in the dtype of the tensors around it. A site the model does not have is refused."""
    _check_sites_exist(model, sites)
    for name, entry in sites.items():
        site = site_of(model, name)
        spec = declarations.get(entry["family"])
        site.set(spec.module.from_config(dict(entry["config"]), **surrounding_placement(model, site.parent)))
    return model


def save_converted(model: nn.Module, folder) -> Path:
    """Save a converted model as ``folder/orthoact.json`` (which sites were converted, to what) and
    ``folder/model.safetensors`` (all weights). :func:`load_converted` rebuilds it from the original
    architecture without calibration."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sites = converted_sites(model)
    if not sites:
        raise ValueError(f"{type(model).__name__} has no orthoact activation: there is no conversion to save")
    description = {"format": FORMAT, "version": FORMAT_VERSION, "model_class": type(model).__qualname__, "sites": sites}
    # Each file is written beside its target and renamed over it, so an interrupted save never
    # leaves a truncated file; the description goes last, as the mark of a complete save.
    write_atomic(folder / WEIGHTS_FILE, lambda tmp: save_model(model, tmp))
    write_atomic(folder / DESCRIPTION_FILE, lambda tmp: Path(tmp).write_text(json.dumps(description, indent=2)))
    return folder


def load_converted(model: nn.Module, folder) -> nn.Module:
    """Rebuild a converted model: ``model`` is the original architecture (fresh or pretrained); its
    recorded sites get their orthoact activations back, then every weight is loaded from the
    safetensors file. Sites or weights that do not match the model are refused with a message;
    nothing is loaded partially."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / DESCRIPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {DESCRIPTION_FILE}: not a model saved by orthoact.save_converted")
    description = json.loads(path.read_text())
    if description.get("format") != FORMAT or description.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not an orthoact conversion of version {FORMAT_VERSION} "
                         f"(format {description.get('format')!r}, version {description.get('version')!r})")
    state = load_file(str(folder / WEIGHTS_FILE))
    sites = description["sites"]
    _check_sites_exist(model, sites)
    # The keys the converted model will have, computed before anything is changed.
    current = model.state_dict(keep_vars=True)
    expected = {k for k in current if not any(k.startswith(site + ".") for site in sites)}
    expected |= {f"{site}.{p}" for site, entry in sites.items() for p in _state_names(entry)}
    missing = sorted(k for k in expected - set(state) if not _tied(current, k, state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"the weights in {folder} do not match this {type(model).__name__} converted as recorded "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}); nothing was loaded"
        )
    apply_sites(model, sites)
    model.load_state_dict(state, strict=False)  # every key checked above; tied copies share storage
    return model


def _state_names(entry: Mapping) -> list[str]:
    """The state-dict keys of one recorded site's module."""
    return list(declarations.get(entry["family"]).param_names)


def _check_sites_exist(model: nn.Module, sites) -> None:
    for name in sites:
        if site_of(model, name) is None:
            raise ValueError(
                f"the saved conversion has an activation at {name!r}, but this {type(model).__name__} has no activation "
                "there: the checkpoint was converted from another architecture (nothing was loaded)"
            )


def _tied(tensors: Mapping[str, Tensor], key: str, state: Mapping[str, Tensor]) -> bool:
    """Whether ``key`` is a tensor shared with one that ``state`` holds (safetensors stores it once)."""
    target = tensors.get(key)
    return target is not None and any(other != key and tensors[other] is target and other in state for other in tensors)
