"""Find the photos under a folder and fingerprint them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})

_CHUNK = 1 << 20


def iter_photos(
    root: Path, on_error: Callable[[Path, OSError], None] | None = None
) -> Iterator[tuple[Path, str]]:
    """Yield `(absolute_path, relative_posix_path)` for every photo under `root`.

    Photos are files ending in .jpg, .jpeg or .png in any letter case. Order is
    sorted by path segment (the same order on every machine and file system).
    Hidden entries (name starting with ".") are skipped, folders and files
    alike: that covers `.git`, `.thumbnails` and the `._IMG_0001.JPG`
    AppleDouble files macOS leaves on SD cards, which are not images.
    Symlinked files are yielded; symlinked folders are not entered, so a link
    loop cannot make the walk endless.

    A sub-folder that cannot be listed goes to `on_error(path, error)` and the
    walk goes on; without `on_error` the error is raised. `root` itself must be
    a readable folder (`NotADirectoryError` / `FileNotFoundError` otherwise).
    """
    base = Path(os.path.abspath(root))
    if not base.exists():
        raise FileNotFoundError(f"photo folder does not exist: {base}")
    if not base.is_dir():
        raise NotADirectoryError(f"not a folder: {base}")
    yield from _walk(base, (), on_error, is_root=True)


def _walk(
    folder: Path,
    rel_parts: tuple[str, ...],
    on_error: Callable[[Path, OSError], None] | None,
    is_root: bool = False,
) -> Iterator[tuple[Path, str]]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        if on_error is None or is_root:
            raise
        on_error(folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            if on_error is None:
                raise
            on_error(folder / entry.name, exc)
            continue
        if is_dir:
            yield from _walk(folder / entry.name, (*rel_parts, entry.name), on_error)
        elif is_file and os.path.splitext(entry.name)[1].lower() in PHOTO_EXTENSIONS:
            yield folder / entry.name, "/".join((*rel_parts, entry.name))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
