"""Photo metadata: decoded size, capture time and camera, from one open.

Orientation follows MegaDetector, because its boxes are fractions of the
image as *it* loaded it (`visualization_utils.open_image`): EXIF orientation
3, 6 and 8 are applied as 180/270/90 degree rotations; mirrored orientations
(2, 4, 5, 7) are not applied; and an image MegaDetector first converts to RGB
(mode L or RGBA) is never rotated, because the converted copy carries no EXIF.
`md_transpose` is that rule; `width`/`height` here and every crop box use it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from PIL import Image

from deerid.errors import Invalid

# Pillow warns (a raw DecompressionBombWarning on stderr) for images between its
# limit and twice it: 100 MP trail-camera photos exist and are read correctly.
# Above twice the limit it raises, and `open_photo` reports that photo as skipped.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

CapturedAtSource = Literal[
    "exif_datetime_original", "exif_datetime_digitized", "exif_datetime", "strip", "file_mtime"
]
EXIF_SOURCES: frozenset[str] = frozenset(
    {"exif_datetime_original", "exif_datetime_digitized", "exif_datetime"}
)

_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_IFD_EXIF = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003  # 36867
_TAG_DATETIME_DIGITIZED = 0x9004  # 36868
_TAG_BODY_SERIAL = 0xA431  # EXIF 2.3 BodySerialNumber
_TAG_CAMERA_SERIAL = 0xC62F  # DNG CameraSerialNumber, in IFD0
# A photo cannot be written before it was taken. Naive camera time against the
# file time read as local time: a day covers any time zone and DST difference.
_CLOCK_SLACK = timedelta(days=1)

_MD_ROTATIONS: dict[int, Image.Transpose] = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_270,
    8: Image.Transpose.ROTATE_90,
}
# Modes MegaDetector keeps as they are; it converts L and RGBA to RGB (losing
# EXIF, hence no rotation) and rejects every other mode.
_MD_UNCONVERTED_MODES = frozenset({"RGB", "I;16"})

# EXIF says "YYYY:MM:DD HH:MM:SS"; some writers use - or / in the date or a T.
_EXIF_DATETIME = re.compile(r"^\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


class PhotoReadError(Invalid):
    """A photo cannot be opened or decoded."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot read photo {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class PhotoMeta:
    width: int
    """Pixels, after the orientation MegaDetector applies (see module doc)."""
    height: int
    captured_at: datetime | None
    """Naive, camera local time (no zone is recorded by trail cameras)."""
    captured_at_source: CapturedAtSource
    camera_make: str | None
    camera_model: str | None
    orientation: int | None = None
    """EXIF orientation as written (1-8), None when absent or unreadable."""
    camera_serial: str | None = None
    """EXIF BodySerialNumber (or DNG CameraSerialNumber): tells two cameras of one model apart."""
    time_problem: str | None = None
    """Why `captured_at` cannot be trusted although EXIF has it (e.g. it is later than the file)."""


def read_photo_meta(path: Path, *, verify: bool = True) -> PhotoMeta:
    """Size, capture time and camera of a photo.

    Capture time comes from EXIF DateTimeOriginal, then DateTimeDigitized,
    then DateTime (IFD0), then the file's modification time read as local
    time (copying off a FAT-formatted SD card keeps the camera's wall clock
    there). `captured_at_source` says which one was used. The ingest puts the
    time read off the photo's info strip before the file time (`with_strip_time`). An EXIF time more
    than a day after the file's own time is kept but flagged in `time_problem`:
    the camera's clock was wrong, so the photo is an event of its own.

    With `verify` (the default) the pixels are decoded at 1/8 scale, so a
    truncated or corrupt file raises here rather than at crop time.

    Raises `PhotoReadError` for a missing, unreadable, non-image or corrupt file.
    """
    path = Path(path)
    with open_photo(path) as image:
        exif = _exif(image)
        transpose = md_transpose(image, exif)
        width, height = image.size
        if transpose in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            width, height = height, width
        if verify:
            if image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            decode(image, path)

    exif_ifd = _exif_ifd(exif)
    captured_at: datetime | None = None
    source: CapturedAtSource = "file_mtime"
    candidates: tuple[tuple[object, CapturedAtSource], ...] = (
        (exif_ifd.get(_TAG_DATETIME_ORIGINAL), "exif_datetime_original"),
        (exif_ifd.get(_TAG_DATETIME_DIGITIZED), "exif_datetime_digitized"),
        (exif.get(_TAG_DATETIME), "exif_datetime"),
    )
    for value, candidate in candidates:
        captured_at = parse_exif_datetime(value)
        if captured_at is not None:
            source = candidate
            break
    try:
        file_time: datetime | None = datetime.fromtimestamp(path.stat().st_mtime)
    except (OSError, OverflowError, ValueError):
        file_time = None
    problem = None
    if captured_at is None:
        captured_at = file_time
    elif file_time is not None and captured_at > file_time + _CLOCK_SLACK:
        problem = (
            f"EXIF and file time disagree: taken {captured_at:%Y-%m-%d %H:%M} "
            f"but the file was written {file_time:%Y-%m-%d %H:%M}"
        )

    return PhotoMeta(
        width=width,
        height=height,
        captured_at=captured_at,
        captured_at_source=source,
        camera_make=_exif_text(exif.get(_TAG_MAKE)),
        camera_model=_exif_text(exif.get(_TAG_MODEL)),
        orientation=_orientation(exif),
        camera_serial=_exif_text(exif_ifd.get(_TAG_BODY_SERIAL)) or _exif_text(exif.get(_TAG_CAMERA_SERIAL)),
        time_problem=problem,
    )


def with_strip_time(meta: PhotoMeta, strip_time: datetime | None, file_time: datetime | None) -> PhotoMeta:
    """`meta` with the time read off the photo's info strip where EXIF has none.

    EXIF stays first (the camera wrote it, no OCR involved); the strip comes before the file's
    modification time, which is often the time the photo was copied. A strip time more than a
    day after the file was written is kept but flagged, as EXIF is."""
    if meta.captured_at_source in EXIF_SOURCES or strip_time is None:
        return meta
    problem = None
    if file_time is not None and strip_time > file_time + _CLOCK_SLACK:
        problem = (
            f"strip and file time disagree: taken {strip_time:%Y-%m-%d %H:%M} "
            f"but the file was written {file_time:%Y-%m-%d %H:%M}"
        )
    return replace(meta, captured_at=strip_time, captured_at_source="strip", time_problem=problem)


def open_photo(path: Path) -> Image.Image:
    """`Image.open` that reports failure as `PhotoReadError`. Pixels are not decoded yet."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise PhotoReadError(path, _bomb_reason(exc)) from exc
    except FileNotFoundError as exc:
        raise PhotoReadError(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise PhotoReadError(path, "is a directory") from exc
    except Image.UnidentifiedImageError as exc:
        raise PhotoReadError(path, "not an image file Pillow can identify") from exc
    except OSError as exc:
        raise PhotoReadError(path, exc.strerror or str(exc)) from exc


def decode(image: Image.Image, path: Path) -> None:
    """Decode the pixels (honouring any draft already set); corrupt data raises `PhotoReadError`."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise PhotoReadError(path, _bomb_reason(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow says "image file is truncated (N bytes not processed)" or
        # "broken data stream"; both mean the file is damaged.
        raise PhotoReadError(path, f"corrupt or truncated image data ({exc})") from exc


def _bomb_reason(exc: Exception) -> str:
    # Pillow says "Image size (400000000 pixels) exceeds limit of 178956970 pixels, could be
    # decompression bomb DOS attack."; the pixel count is what a person can check.
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1e6:,.0f} megapixels" if found else "too many pixels"
    limit = (Image.MAX_IMAGE_PIXELS or 0) * 2 / 1e6
    return f"image too large to decode safely ({size}, limit {limit:,.0f}; possibly a decompression bomb)"


def md_transpose(image: Image.Image, exif: Image.Exif | None = None) -> Image.Transpose | None:
    """The rotation MegaDetector applied to this image before detecting, or None."""
    if image.mode not in _MD_UNCONVERTED_MODES:
        return None
    return _MD_ROTATIONS.get(_orientation(exif if exif is not None else _exif(image)) or 1)


def parse_exif_datetime(value: object) -> datetime | None:
    """`datetime` for an EXIF date string, None for blank, zeroed or impossible dates."""
    text = _exif_text(value)
    if text is None:
        return None
    match = _EXIF_DATETIME.match(text)
    if match is None:
        return None
    try:
        # Named, not star-unpacked: mypy would let the ints fill `tzinfo` too.
        year, month, day, hour, minute, second = (int(group) for group in match.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        # "0000:00:00 00:00:00" is what cameras write when the clock was never set.
        return None


def _exif(image: Image.Image) -> Image.Exif:
    try:
        return image.getexif()
    except Exception:
        # Damaged EXIF must not make a decodable photo unreadable; it only
        # loses the metadata, and capture time falls back to the file time.
        return Image.Exif()


def _exif_ifd(exif: Image.Exif) -> dict[int, object]:
    try:
        return dict(exif.get_ifd(_IFD_EXIF))
    except Exception:
        return {}


def _orientation(exif: Image.Exif) -> int | None:
    value = exif.get(_TAG_ORIENTATION)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    # EXIF ASCII is NUL-terminated and fixed-width fields are NUL-padded;
    # anything after the first NUL is padding or garbage.
    text = value.strip("\x00 \t\r\n").split("\x00", 1)[0].strip()
    return text or None
