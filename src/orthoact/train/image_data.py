"""Image data: Fashion-MNIST from IDX files, ImageNet-style folders, augmentations, Mixup/CutMix.

* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` package puts the gzipped IDX files in
  ``/usr/share/datasets/fashion-mnist``; ``orthoact data fashion-mnist`` installs it (as root).
* Folders: ``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*``, decoded with Pillow.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from orthoact._errors import MissingDependency

FMNIST_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array (uint8 images or labels)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
    if dtype_code not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(dtypes[dtype_code])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_dir() -> Path:
    candidates = [Path(os.environ["ORTHOACT_FMNIST_DIR"])] if os.environ.get("ORTHOACT_FMNIST_DIR") else FMNIST_DIRS
    for d in candidates:
        if all((d / f).exists() for pair in FMNIST_FILES.values() for f in pair):
            return d
    raise FileNotFoundError(
        "Fashion-MNIST not found in " + ", ".join(map(str, candidates)) + "; run: orthoact data fashion-mnist "
        "(installs Debian's dataset-fashion-mnist package, needs root: apt-get install dataset-fashion-mnist), "
        "or set ORTHOACT_FMNIST_DIR to a folder with the four IDX .gz files"
    )


def install_fashion_mnist() -> Path:
    try:
        return fashion_mnist_dir()
    except FileNotFoundError:
        pass
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PermissionError("installing Fashion-MNIST needs root and apt-get: sudo apt-get install dataset-fashion-mnist")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"apt-get install dataset-fashion-mnist failed:\n{result.stderr[-800:]}")
    return fashion_mnist_dir()


def load_fashion_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of ``train`` or ``test``."""
    folder = fashion_mnist_dir()
    images_file, labels_file = FMNIST_FILES[split]
    images = read_idx(folder / images_file)
    labels = read_idx(folder / labels_file)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class TensorImages:
    """In-memory uint8 images; augmentation: random crop with zero padding and horizontal flip."""

    mean, std = 0.2860, 0.3530  # Fashion-MNIST train statistics

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool, pad: int = 2) -> None:
        self.images, self.labels, self.augment, self.pad = images, labels, augment, pad
        self.classes = [str(i) for i in range(int(labels.max()) + 1)]

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[indices].float().div_(255.0)
        if self.augment and generator is not None:
            n, _, h, w = x.shape
            padded = F.pad(x, (self.pad,) * 4)
            dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            x = _crop(padded, dy, dx, h, w)
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return (x - self.mean) / self.std, self.labels[indices]


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-image (h, w) windows of a padded single-channel batch at offsets (dy, dx)."""
    n = padded.shape[0]
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    index = torch.arange(n)[:, None, None]
    return padded[index, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


class ImageFolder:
    """``root/<class>/<image>`` decoded with Pillow, with the standard ImageNet augmentations."""

    def __init__(self, root: str | Path, size: int = 224, train: bool = True, classes: list[str] | None = None,
                 on_bad_image: str = "skip") -> None:
        try:
            from PIL import Image  # noqa: F401
        except ImportError:
            raise MissingDependency("image folders need Pillow: pip install pillow") from None
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        if on_bad_image not in ("skip", "error"):
            raise ValueError(f"on_bad_image must be 'skip' or 'error', got {on_bad_image!r}")
        found = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not found:
            raise ValueError(f"{root} has no class folders (expected {root}/<class>/<image files>)")
        if classes is not None and found != classes:
            missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
            raise ValueError(f"class folders of {root} differ from the training classes (missing {missing}, extra {extra})")
        self.classes = classes or found
        self.samples: list[tuple[Path, int]] = []
        for index, name in enumerate(self.classes):
            files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise ValueError(f"class folder {root / name} has no images (extensions: {', '.join(IMAGE_EXTENSIONS)})")
            self.samples += [(p, index) for p in files]
        self.size, self.train, self.on_bad_image = size, train, on_bad_image
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        from PIL import Image

        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    return self._transform(image, generator), label
            except Exception as error:  # noqa: BLE001 - unreadable or truncated file
                if self.on_bad_image == "error":
                    raise ValueError(f"cannot read image {path}: {error}") from None
                self.skipped += 1
                warnings.warn(f"skipping unreadable image {path} ({self.skipped} so far): {error}", RuntimeWarning,
                              stacklevel=2)
        raise ValueError("no readable image in the dataset")

    def _transform(self, image, generator) -> torch.Tensor:
        from PIL import Image

        size = self.size
        if self.train:  # random resized crop (scale 0.08-1, ratio 3/4-4/3) and horizontal flip
            w, h = image.size
            g = generator or torch.Generator().manual_seed(0)
            for _ in range(10):
                area = w * h * (0.08 + 0.92 * torch.rand(1, generator=g).item())
                ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(1, generator=g).item())
                cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
                if 0 < cw <= w and 0 < ch <= h:
                    left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
                    top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
                    break
            else:
                cw = ch = min(w, h)
                left, top = (w - cw) // 2, (h - ch) // 2
            image = image.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
            if torch.rand(1, generator=g).item() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
        else:  # resize the short side to size / 0.875, center crop
            w, h = image.size
            short = int(size / 0.875)
            scale = short / min(w, h)
            image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            w, h = image.size
            left, top = (w - size) // 2, (h - size) // 2
            image = image.crop((left, top, left + size, top + size))
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        return (x - mean) / std


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator, mixup: float, cutmix: float,
              smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (alpha ``mixup``) or CutMix (alpha ``cutmix``), chosen with equal odds when both are on,
    and label smoothing; returns the images and soft targets."""
    off = smoothing / num_classes
    target = torch.full((len(y), num_classes), off, dtype=torch.float32)
    target.scatter_(1, y[:, None], 1.0 - smoothing + off)
    if mixup <= 0 and cutmix <= 0:
        return x, target
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1, generator=generator).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = _beta(alpha, generator)
    perm = torch.arange(len(y) - 1, -1, -1)  # pair each sample with the batch reversed (as timm)
    if use_cutmix:
        h, w = x.shape[-2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy = int(torch.randint(0, h, (1,), generator=generator))
        cx = int(torch.randint(0, w, (1,), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw, deterministic given the generator's state."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
