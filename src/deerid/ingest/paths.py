"""Path spelling shared by detections files and folder scans.

MegaDetector writes `file` however the machine that ran it spelled paths
(Windows backslashes, `./` prefixes, absolute paths); a folder scan yields
clean relative posix paths. Both sides go through `normalise_relpath` so they
compare equal, and `match_files` bridges the case where the detector ran on a
different root than the one being scanned.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


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


NOT_FOUND = "listed in the detections file but not found under the photo folder"


@dataclass(frozen=True)
class Matching:
    """Which photo each detections-file entry names, and why the others name none."""

    matched: dict[str, str]
    """Entry (as passed in) -> photo relpath; each photo is named by one entry at most."""
    problems: dict[str, str]
    """Entry -> why it was not used: not found, ambiguous, or another entry names the same photo."""


def match_files(detection_files: Iterable[str], photo_relpaths: Iterable[str]) -> dict[str, str]:
    """Map each detections-file path to the scanned photo it names.

    An exact match of the normalised paths wins. Otherwise the longest run of
    trailing path segments (at least the file name) that names exactly one
    photo is used, which covers detectors run with absolute paths or on a
    parent or child folder of the scanned root. A path whose best suffix names
    several photos (e.g. `IMG_0001.JPG` in two camera folders) stays unmatched
    rather than being guessed. Keys are the strings as passed in; paths
    that match nothing are absent.

    Unicode normalisation never matters (macOS writes names decomposed, NFD,
    while JSON usually holds them composed, NFC). Letter case matters only when
    it decides: a path that names no photo with its own case matches the one
    photo that differs only in case (Windows and macOS file systems ignore
    case, so a detector run there may write either).
    """
    return _Matcher(photo_relpaths).match_all(detection_files)[0]


def match_entries(detection_files: Iterable[str], photo_relpaths: Iterable[str]) -> Matching:
    """`match_files`, plus a reason for every entry left out.

    When two entries spelled differently name the same photo (`C:\\cards\\IMG_1.JPG`
    and `cards/IMG_1.JPG`) the first is kept and the later one is reported,
    never silently dropped."""
    files = list(detection_files)
    found, ambiguous = _Matcher(photo_relpaths).match_all(files)
    matched: dict[str, str] = {}
    problems: dict[str, str] = {}
    first_for: dict[str, str] = {}
    for file in files:
        photo = found.get(file)
        if photo is None:
            several = ambiguous.get(file)
            problems[file] = (
                f"names {len(several)} photos under the photo folder ({', '.join(sorted(several)[:3])}"
                f"{', …' if len(several) > 3 else ''}); give more of its path to choose one"
                if several
                else NOT_FOUND
            )
        elif photo in first_for:
            problems[file] = (
                f"names the same photo ({photo}) as the earlier entry {first_for[photo]!r}; "
                "this entry and its boxes are ignored"
            )
        else:
            first_for[photo] = file
            matched[file] = photo
    return Matching(matched, problems)


def _key(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def _folded(path: str) -> str:
    return unicodedata.normalize("NFC", path.casefold())


class _Matcher:
    def __init__(self, photo_relpaths: Iterable[str]) -> None:
        self.photos: dict[str, str] = {}
        self.by_suffix: dict[tuple[str, ...], list[str]] = {}
        self.by_folded_suffix: dict[tuple[str, ...], list[str]] = {}
        for original in photo_relpaths:
            norm = _key(normalise_relpath(original))
            self.photos[norm] = original
            parts = tuple(norm.lstrip("/").split("/"))
            folded = tuple(_folded(part) for part in parts)
            for start in range(len(parts)):
                self.by_suffix.setdefault(parts[start:], []).append(original)
                self.by_folded_suffix.setdefault(folded[start:], []).append(original)

    def match_all(self, detection_files: Iterable[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """({file: photo} for the matched, {file: candidates} for the ambiguous)."""
        matched: dict[str, str] = {}
        ambiguous: dict[str, list[str]] = {}
        for file in detection_files:
            norm = _key(normalise_relpath(file))
            if norm in self.photos:
                matched[file] = self.photos[norm]
                continue
            parts = tuple(norm.lstrip("/").split("/"))
            candidates = self._longest(self.by_suffix, parts)
            if candidates is None:
                candidates = self._longest(self.by_folded_suffix, tuple(_folded(p) for p in parts))
            if candidates is None:
                continue
            if len(candidates) == 1:
                matched[file] = candidates[0]
            else:
                ambiguous[file] = candidates
        return matched, ambiguous

    @staticmethod
    def _longest(index: dict[tuple[str, ...], list[str]], parts: tuple[str, ...]) -> list[str] | None:
        # A longer suffix is never less specific, so an ambiguous longest
        # suffix means every shorter one is ambiguous too.
        for start in range(len(parts)):
            candidates = index.get(parts[start:])
            if candidates is not None:
                return candidates
        return None
