"""Files written atomically (temporary file in the same folder, fsync, rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` writes a temporary file in the same folder, which is then synced and renamed
    over ``path``: a crash mid-write never leaves a truncated file at ``path``, and a failed write
    leaves the previous one. The file gets the permissions of any new file (the umask), and the
    folder is synced so the rename itself survives a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
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


def write_json(path: str | Path, data) -> None:
    """``data`` as indented JSON at ``path``, written atomically (see :func:`write_atomic`)."""
    import json

    text = json.dumps(data, indent=2, default=str) + "\n"
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))
