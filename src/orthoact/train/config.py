"""Configuration: dataclasses, TOML presets and ``key=value`` overrides.

A run's configuration is a set of sections (``model``, ``train``, ``data``), each a dataclass.
Presets live in ``orthoact/recipes/<name>.toml``. Overrides name a field as ``section.field`` or
just ``field`` when the name is unique, with ``act`` short for ``model.activation``::

    orthoact train lm --preset shakespeare-char act=hermite:3 train.max_steps=2000 lr=3e-4
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALIASES = {"act": "model.activation", "activation": "model.activation"}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_range(key: str, value, *, low=None, high=None, low_open=False, high_open=False, integer=False) -> None:
    """Raise ``ValueError("key must be ..., got value")`` unless ``value`` is a finite number (an int
    if ``integer``) in the interval."""
    kind = "an int" if integer else "a finite number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    allowed = f"{kind} {' and '.join(bounds)}".strip()
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else _number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{key} must be {allowed}, got {value!r}")


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision, logging and checkpointing of one run."""

    out_dir: str = ""  # "": runs/<preset>-<activation>
    overwrite: bool = False  # replace a previous run in out_dir (otherwise refused unless resuming)
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32  # per process and micro-step; global batch = batch_size * grad_accum * world size
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on >= 2-D weights only; never on norms, biases or activation parameters
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables
    act_lr_mult: float | None = None  # learning-rate multiplier of activation parameters (None: each family's tuned default)
    dtype: str = "float32"  # float32 | bfloat16 | float16 (autocast; float16 adds a GradScaler)
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    checkpoint: bool = True  # write ckpt.pt at every evaluation
    resume: bool = False  # continue from out_dir/ckpt.pt
    stop_at: int = 0  # end this process after this step, with a checkpoint (resume later); 0: run to max_steps
    snapshot_interval: int = 0  # activation-parameter snapshots (0: at every evaluation)
    progress: bool = True
    tensorboard: bool = False
    threads: int = 0  # torch CPU threads (0: leave PyTorch's default)
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights, evaluated too

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval"):
            check_range(f"train.{name}", getattr(self, name), low=1, integer=True)
        for name in ("seed", "warmup_steps", "stop_at", "snapshot_interval", "threads"):
            check_range(f"train.{name}", getattr(self, name), low=0, integer=True)
        check_range("train.lr", self.lr, low=0, low_open=True)
        check_range("train.min_lr", self.min_lr, low=0, high=self.lr)
        check_range("train.weight_decay", self.weight_decay, low=0)
        if self.act_lr_mult is not None:
            check_range("train.act_lr_mult", self.act_lr_mult, low=0)
        check_range("train.grad_clip", self.grad_clip, low=0)
        check_range("train.beta1", self.beta1, low=0, high=1, high_open=True)
        check_range("train.beta2", self.beta2, low=0, high=1, high_open=True)
        check_range("train.ema_decay", self.ema_decay, low=0, high=1, high_open=True)
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"train.dtype must be 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"train.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.resume and self.overwrite:
            raise ValueError("train.resume=true and train.overwrite=true contradict each other: choose one")


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than letters, digits, ``_.=`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9_.=]+", "-", text).strip("-") or "base"


def run_name(preset: str, activation) -> str:
    """The default run folder name: ``<preset>-<activation>`` (``shakespeare-char-hermite-3``)."""
    act = activation if isinstance(activation, str) else getattr(activation, "__name__", "custom")
    return f"{Path(preset).stem}-{slug(act)}"


def resolve(sections: dict[str, type], kind: str, preset: str, overrides=()) -> dict:
    """A recipe's config from a preset and ``key=value`` overrides; an empty ``train.out_dir``
    becomes ``runs/<preset>-<activation>``."""
    cfg = build(sections, load_preset(preset, kind), list(overrides))
    if not cfg["train"].out_dir:
        cfg["train"] = dataclasses.replace(cfg["train"], out_dir=str(Path("runs") / run_name(preset, cfg["model"].activation)))
    return cfg


def presets(kind: str | None = None) -> list[str]:
    """Names of the shipped presets (of one kind, ``"lm"`` or ``"image"``)."""
    names = []
    for entry in resources.files("orthoact.recipes").iterdir():
        if entry.name.endswith(".toml"):
            if kind is None or tomllib.loads(entry.read_text()).get("kind") == kind:
                names.append(entry.name[:-5])
    return sorted(names)


def load_preset(name: str, kind: str) -> dict:
    """The raw sections of a preset (a shipped name or a path to a TOML file)."""
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        data = tomllib.loads(path.read_text())
    else:
        entry = resources.files("orthoact.recipes").joinpath(f"{name}.toml")
        if not entry.is_file():
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(presets(kind))} (or a path to a .toml file)")
        data = tomllib.loads(entry.read_text())
    if data.get("kind", kind) != kind:
        raise ValueError(f"preset {name!r} is for '{data.get('kind')}' training, not '{kind}'")
    data.pop("kind", None)
    return data


def _field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _optional(typ):
    """``X`` for ``X | None`` (``Optional[X]``), else None."""
    args = typing.get_args(typ)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return None


def _parse(text: str, typ, key: str):
    """A command-line string as the field's type (``none`` for an optional field's None)."""
    inner = _optional(typ)
    if inner is not None:
        return None if text.strip().lower() in ("none", "") else _parse(text, inner, key)
    if typ is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} expects a bool (true/false), got {text!r}")
    if typ is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key} expects an int, got {text!r}") from None
    if typ is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key} expects a float, got {text!r}") from None
    return text


def _check_type(value, typ, key: str):
    inner = _optional(typ)
    if inner is not None:
        return None if value is None else _check_type(value, inner, key)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, str, bool) and not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"{key} expects a {typ.__name__}, got {value!r}")
    return value


def build(sections: dict[str, type], raw: dict, overrides: list[str] = ()) -> dict:
    """Dataclass instances per section from raw preset values plus ``key=value`` overrides."""
    values: dict[str, dict] = {name: {} for name in sections}
    for section, content in raw.items():
        if section not in sections:
            raise ValueError(f"unknown config section {section!r}; sections: {', '.join(sections)}")
        types = _field_types(sections[section])
        for key, value in content.items():
            if key not in types:
                raise ValueError(f"unknown config key '{section}.{key}'; known: {', '.join(types)}")
            values[section][key] = _check_type(value, types[key], f"{section}.{key}")
    all_keys = {name: _field_types(cls) for name, cls in sections.items()}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must be key=value")
        key, text = item.split("=", 1)
        section, name = canonical_key(sections, key).split(".", 1)
        typ = all_keys[section][name]
        values[section][name] = _parse(text, typ if typ in (int, float, bool) or _optional(typ) else str, f"{section}.{name}")
    return {name: cls(**values[name]) for name, cls in sections.items()}


def canonical_key(sections: dict[str, type], key: str) -> str:
    """``section.field`` for an override key (``lr`` -> ``train.lr``, ``act`` -> ``model.activation``);
    unknown or ambiguous keys raise ``ValueError``."""
    all_keys = {name: _field_types(cls) for name, cls in sections.items()}
    key = ALIASES.get(key.strip(), key.strip())
    if "." in key:
        section, name = key.split(".", 1)
        if section not in all_keys or name not in all_keys[section]:
            raise ValueError(f"unknown config key {key!r}; known: {_known(all_keys)}")
        return key
    owners = [s for s, types in all_keys.items() if key in types]
    if not owners:
        raise ValueError(f"unknown config key {key!r}; known: {_known(all_keys)}")
    if len(owners) > 1:
        raise ValueError(f"config key {key!r} is ambiguous: use one of {', '.join(f'{s}.{key}' for s in owners)}")
    return f"{owners[0]}.{key}"


def _known(all_keys: dict) -> str:
    return ", ".join(f"{s}.{k}" for s, types in all_keys.items() for k in types)


def to_dict(config: dict) -> dict:
    """Plain (JSON/TOML-safe) values of every section."""
    out = {}
    for name, obj in config.items():
        out[name] = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)) for k, v in dataclasses.asdict(obj).items()}
    return out
