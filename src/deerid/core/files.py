"""Writing files so that a reader never sees half of one, and hashing them.

Another process (a worker, the API, a second ingest) may read any of these
files at any moment, and a crash may stop a write halfway. So every write goes
to a uniquely named file beside the target and is renamed over it: a rename
within one folder is atomic, and two writers never share a temporary name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed over `target` when the block succeeds,
    removed when it fails. For writers that want a path (torch.save, an ONNX export, a CSV stream)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: Path, data: bytes | str) -> None:
    """Replace `target` with `data` in one step."""
    with atomic_path(target) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (photos and weights can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
