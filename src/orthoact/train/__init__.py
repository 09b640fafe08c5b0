"""Training shared by the language and vision recipes: configs, trainer, checkpoints, DDP."""

from orthoact.train.config import TrainConfig, build, load_preset, presets
from orthoact.train.trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "build", "load_preset", "presets"]
