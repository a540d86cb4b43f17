"""Path spelling shared by detections files and folder scans.

MegaDetector writes `file` however the machine that ran it spelled paths
(Windows backslashes, `./` prefixes, absolute paths); a folder scan yields
clean relative posix paths. Both sides go through `normalise_relpath` so they
compare equal, and `match_files` bridges the case where the detector ran on a
different root than the one being scanned.
"""

from __future__ import annotations

from collections.abc import Iterable


def normalise_relpath(path: str) -> str:
    """Posix spelling of a path as written in a detections file or a scan.

    Backslashes become `/`, repeated separators collapse, `.` segments go
    (so a leading `./` is stripped). `..` is kept: resolving it would need the
    file system. An absolute path stays absolute (leading `/`, or a Windows
    drive letter as its first segment).

    >>> normalise_relpath(".\\\\cam1\\\\IMG_0001.JPG")
    'cam1/IMG_0001.JPG'
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {type(path).__name__}")
    unified = path.strip().replace("\\", "/")
    absolute = unified.startswith("/")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if not parts:
        raise ValueError(f"empty path: {path!r}")
    joined = "/".join(parts)
    return "/" + joined if absolute else joined


def match_files(detection_files: Iterable[str], photo_relpaths: Iterable[str]) -> dict[str, str]:
    """Map each detections-file path to the scanned photo it names.

    An exact match of the normalised paths wins. Otherwise the longest run of
    trailing path segments (at least the file name) that names exactly one
    photo is used, which covers detectors run with absolute paths or on a
    parent or child folder of the scanned root. A path whose best suffix names
    several photos (e.g. `IMG_0001.JPG` in two camera folders) stays unmatched
    rather than being guessed. Keys are the strings as passed in; paths
    that match nothing are absent.
    """
    photos = {normalise_relpath(p): p for p in photo_relpaths}
    by_suffix: dict[tuple[str, ...], list[str]] = {}
    for norm, original in photos.items():
        parts = tuple(norm.lstrip("/").split("/"))
        for start in range(len(parts)):
            by_suffix.setdefault(parts[start:], []).append(original)

    matched: dict[str, str] = {}
    for file in detection_files:
        norm = normalise_relpath(file)
        if norm in photos:
            matched[file] = photos[norm]
            continue
        parts = tuple(norm.lstrip("/").split("/"))
        for start in range(len(parts)):
            candidates = by_suffix.get(parts[start:])
            if candidates is None:
                continue
            # A longer suffix is never less specific, so an ambiguous longest
            # suffix means every shorter one is ambiguous too.
            if len(candidates) == 1:
                matched[file] = candidates[0]
            break
    return matched
