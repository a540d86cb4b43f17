"""Find the photos under a folder and fingerprint them."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from deerid.errors import NotFound

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})

_CHUNK = 1 << 20

OnSkip = Callable[[str, str], None]
"""on_skip(file, reason): `file` is printable (relative to the root, undecodable bytes escaped)."""


class PhotoFolderError(NotFound, NotADirectoryError):
    """The folder to ingest is not one that can be read: nothing under it can be stored."""


class PhotoFolderMissing(PhotoFolderError, FileNotFoundError):
    pass


class ScanSkip(OSError):
    """An entry the walk cannot use, with the reason a person reads (e.g. a file name that is not UTF-8)."""


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text that can always be printed, stored and sent as JSON.

    Names that are not valid UTF-8 reach Python as lone surrogates; they become
    `\\xff`-style escapes of the raw bytes, so the name is still recognisable."""
    text = os.fspath(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    """True when a file name decoded from the file system is valid UTF-8 (no escaped bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_reason(exc: OSError) -> str:
    """Why an entry was skipped, in words."""
    if isinstance(exc, ScanSkip):
        return exc.strerror or str(exc)
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links); skipped"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; skipped"
    return f"cannot read: {exc.strerror or exc}; skipped"


def iter_photos(
    root: Path,
    on_error: Callable[[Path, OSError], None] | None = None,
    *,
    on_skip: OnSkip | None = None,
) -> Iterator[tuple[Path, str]]:
    """Yield `(absolute_path, relative_posix_path)` for every photo under `root`.

    Photos are files ending in .jpg, .jpeg or .png in any letter case. Order is
    sorted by path segment (the same order on every machine and file system).
    Hidden entries (name starting with ".") are skipped, folders and files
    alike: that covers `.git`, `.thumbnails` and the `._IMG_0001.JPG`
    AppleDouble files macOS leaves on SD cards, which are not images.
    Symlinked files are yielded; symlinked folders are not entered, so a link
    loop cannot make the walk endless.

    An entry the walk cannot use is a problem for that entry only: a sub-folder
    that cannot be listed, a symbolic link loop, a name that is not valid UTF-8
    (it could not be stored or printed), and a photo-named entry that is not a
    regular file (a dangling link, a FIFO). Each goes to `on_error(path,
    error)`, or to `on_skip(relative path, reason)` in words, and the walk goes
    on; with neither the error is raised. Photo-named entries that are not
    regular files are only reported, never raised. `root` itself must be a
    readable folder (`PhotoFolderError` otherwise).
    """
    base = Path(os.path.abspath(root))
    if not base.exists():
        raise PhotoFolderMissing(f"photo folder does not exist: {base}")
    if not base.is_dir():
        raise PhotoFolderError(f"not a folder: {base}")
    if not is_utf8_name(str(base)):
        # Every photo's stored path would start with it.
        raise PhotoFolderError(f"photo folder path is not valid UTF-8 (rename it): {display_path(base)}")

    report: Callable[[Path, OSError], None] | None = on_error
    if on_skip is not None:

        def report(path: Path, exc: OSError) -> None:
            rel = os.path.relpath(path, base) if path != base else path.name
            on_skip(display_path(Path(rel).as_posix()), scan_reason(exc))
            if on_error is not None:
                on_error(path, exc)

    yield from _walk(base, (), report, is_root=True)


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
        if is_root and isinstance(exc, PermissionError):
            raise PhotoFolderError(f"permission denied: {folder}") from exc
        if on_error is None or is_root:
            raise
        on_error(folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = not is_dir and entry.is_file()
        except OSError as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            continue
        is_photo_name = os.path.splitext(entry.name)[1].lower() in PHOTO_EXTENSIONS
        if (is_dir or is_photo_name) and not is_utf8_name(entry.name):
            # The database, JSON and the console all need text; such a name cannot be kept.
            what = "folder" if is_dir else "file"
            problem = ScanSkip(
                errno.EILSEQ, f"{what} name is not valid UTF-8 (rename it to ingest it); skipped", str(path)
            )
            if on_error is None:
                raise problem
            on_error(path, problem)
            continue
        if is_dir:
            yield from _walk(path, (*rel_parts, entry.name), on_error)
        elif is_file and is_photo_name:
            if entry.is_symlink() and not is_utf8_name(os.path.realpath(path)):
                # The resolved path is what gets stored.
                problem = ScanSkip(errno.EILSEQ, "link target path is not valid UTF-8; skipped", str(path))
                if on_error is None:
                    raise problem
                on_error(path, problem)
                continue
            yield path, "/".join((*rel_parts, entry.name))
        elif is_photo_name and on_error is not None:
            on_error(path, ScanSkip(errno.EINVAL, _not_a_file(entry), str(path)))


def _not_a_file(entry: os.DirEntry[str]) -> str:
    """Why a photo-named entry that is not a regular file is skipped."""
    try:
        if entry.is_symlink() and not os.path.exists(entry.path):
            target = display_path(os.readlink(entry.path))
            return f"dangling symbolic link (its target {target} does not exist); skipped"
        mode = os.stat(entry.path).st_mode
    except OSError as exc:
        return scan_reason(exc)
    if stat.S_ISDIR(mode):
        return "a symbolic link to a folder (links to folders are not followed); skipped"
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"{kind}, not a photo file; skipped"
