"""Read the info strip trail cameras burn into each photo: time, camera name, temperature.

Three layouts are handled (docs/strip.md):

- a solid band at the bottom or the top of the frame with light text (Moultrie, Victure and
  most others): found as the run of rows from the edge whose median grey stays at the edge's;
- no band, white text straight over the picture (Simmons): the text line is first located with
  Tesseract's sparse-text mode in the bottom (then top) 6 % of the frame, then read from a tight
  crop in several preparations and the readings vote.

Tesseract (the Debian `tesseract-ocr` package, the `tesseract` program) does the reading; this
module prepares its input (crop, grey, upscale, threshold, dark text on white) and parses its
output strictly: a date that cannot exist (month 13, 31 June) or lies in the future is rejected,
never repaired into another date. Pure: no database, no settings.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, TypedDict, TypeVar

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from deerid.errors import Unavailable

StripStatus = Literal["read", "no_time", "invalid_date", "no_strip", "no_tesseract", "error"]
"""read: a valid time was read; no_time: text, but no complete date and time in it;
invalid_date: the date read cannot exist (or lies in the future); no_strip: no strip found;
no_tesseract: the `tesseract` program is missing; error: Tesseract or the image failed."""

BandPlace = Literal["bottom", "top", "overlay"]

_TEXT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/:.-°"
# Every call gets one thread: OCR runs beside embedding on small machines, and Tesseract's
# OpenMP threads only contend with it for a one-line image.
_TESSERACT_ENV = {"OMP_THREAD_LIMIT": "1"}
_TESSERACT_TIMEOUT_S = 30.0
_PAD = 20  # white margin around every image given to Tesseract, which misreads glyphs at the edge
# A band is at least this many rows (a 360-px thumbnail's strip is 24) and at most this share of
# the frame: a taller uniform run is a dark night scene, not a strip.
_BAND_MIN_ROWS = 8
_BAND_MIN_SHARE = 0.015
_BAND_MAX_SHARE = 0.12
_BAND_GREY_TOLERANCE = 15
# Strip glyphs are ~40 % of the band; Tesseract reads best at a cap height of 30-50 px.
_BAND_HEIGHT_PX = 96
_OVERLAY_SEARCH_SHARE = 0.06
_OVERLAY_TEXT_PX = 50
# Brand logos printed before the user's camera name. Moultrie's is dropped (the name the user set
# follows it); other brands are kept, since their strip has no other name ("SIMMONS CAMERA 01").
_DROPPED_LOGOS = ("MOULTRIE", "MOBILE")
_KEPT_BRANDS = ("SIMMONS", "BUSHNELL", "BROWNING", "STEALTHCAM", "SPYPOINT", "TACTACAM", "WILDGAME")
# Temperatures outside this range are not air temperatures but a misread (see _temperature).
_TEMP_RANGE_F = (-60, 140)


class TesseractMissing(Unavailable):
    """The `tesseract` program is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "tesseract is not installed: strip reading needs it (Debian: apt-get install tesseract-ocr; "
            "scripts/setup.sh installs it)"
        )


@dataclass(frozen=True)
class ParsedStrip:
    """What the text of one strip says; every field None when it is not there."""

    captured_at: datetime | None = None
    has_seconds: bool = False
    """The strip shows seconds; without them `captured_at` is to the minute."""
    day: date | None = None
    """The date alone, also when no valid time was read beside it (readings vote field by field)."""
    clock: timedelta | None = None
    """The time of day alone, also when no valid date was read beside it."""
    camera_name: str | None = None
    temperature_f: int | None = None
    """Degrees Fahrenheit (a Celsius strip is converted, rounded)."""
    problem: str | None = None
    """Why a date or time that was there was rejected (e.g. month 13)."""


@dataclass(frozen=True)
class StripReading(ParsedStrip):
    """One photo's strip: what was read, where, how long it took."""

    status: StripStatus = "no_strip"
    text: str = ""
    """Tesseract's text of the reading used (for people and for debugging misreads)."""
    place: BandPlace | None = None
    text_height_px: int = 0
    """Height of the strip (or overlay line) in the photo's pixels: how much a reading can be trusted."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "read"


def tesseract_path() -> str | None:
    """The `tesseract` program, or None where it is not installed."""
    return shutil.which(os.environ.get("DEERID_TESSERACT", "tesseract"))


def read_strip(source: Path | str | Image.Image, *, now: datetime | None = None) -> StripReading:
    """Find and read the strip of a photo.

    Never raises for a photo: an unreadable file, a missing strip or a missing `tesseract` is a
    status (the caller falls back to EXIF or the file time). `now` bounds plausible dates
    (a strip date more than a day after it is rejected); default: the current time.
    """
    started = time.perf_counter()
    exe = tesseract_path()
    if exe is None:
        return StripReading(status="no_tesseract", problem=str(TesseractMissing()))
    try:
        if isinstance(source, Image.Image):
            rgb = np.asarray(source.convert("RGB"))
        else:
            with Image.open(source) as image:
                rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return StripReading(status="error", problem=f"cannot open the photo: {exc}")
    try:
        reading = _read_rgb(exe, rgb, now or datetime.now())
    except (OSError, subprocess.SubprocessError) as exc:
        reading = StripReading(status="error", problem=f"tesseract failed: {exc}")
    return replace(reading, seconds=round(time.perf_counter() - started, 4))


def _read_rgb(exe: str, rgb: np.ndarray, now: datetime) -> StripReading:
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=2)
    height = rgb.shape[0]
    # Only the rows a band can cover are looked at: a 100 MP photo's middle is never converted.
    edge = min(height, int(_BAND_MAX_SHARE * height) + 2)
    failed: StripReading | None = None
    for place, part in (("bottom", rgb[height - edge :]), ("top", rgb[:edge])):
        luma = np.asarray(Image.fromarray(part).convert("L"))
        rows = find_band(luma, place, frame_height=height)  # type: ignore[arg-type]
        if rows is None:
            continue
        # Some cameras print a band at both edges, one of them without the time: try both.
        reading = _read_band(exe, luma, rows, place, now)  # type: ignore[arg-type]
        if reading.captured_at is not None:
            return reading
        failed = failed or reading
    return failed or _read_overlay(exe, rgb, now)


def find_band(
    luma: np.ndarray, place: Literal["bottom", "top"] = "bottom", *, frame_height: int | None = None
) -> tuple[int, int] | None:
    """Rows [start, end) of `luma` that are a solid strip band at that edge, or None.

    The band is the run of rows from the edge whose median grey stays within a few levels of
    the edge rows' median: text covers a minority of each row, so the median is the band's
    colour. A run taller than 12 % of the frame is a uniform scene (night, snow), not a strip.
    `luma` may be the rows next to that edge only; `frame_height` is then the whole photo's.
    """
    height = luma.shape[0]
    frame = frame_height or height
    medians = np.median(luma, axis=1)
    order = range(height - 1, -1, -1) if place == "bottom" else range(height)
    edge = medians[-3:] if place == "bottom" else medians[:3]
    colour = float(np.median(edge))
    count = 0
    for y in order:
        if abs(float(medians[y]) - colour) >= _BAND_GREY_TOLERANCE:
            break
        count += 1
    if count < max(_BAND_MIN_ROWS, _BAND_MIN_SHARE * frame) or count > _BAND_MAX_SHARE * frame:
        return None
    return (height - count, height) if place == "bottom" else (0, count)


def _read_band(
    exe: str, luma: np.ndarray, rows: tuple[int, int], place: BandPlace, now: datetime
) -> StripReading:
    band = Image.fromarray(luma[rows[0] : rows[1]])
    colour = float(np.median(np.asarray(band)))
    light_text = colour < 128
    scale = _BAND_HEIGHT_PX / band.height
    size = (max(1, round(band.width * scale)), _BAND_HEIGHT_PX)
    # Halfway between the band and full white (or black) separates glyphs from band, whatever
    # its grey; the second and third preparations rescue what antialiasing merged in the first.
    cut = colour + (255 - colour) * 0.45 if light_text else colour * 0.55
    big = band.resize(size, Image.Resampling.LANCZOS)
    variants = [
        _binary(big, cut, light_text),
        ImageOps.invert(band.resize(size, Image.Resampling.BICUBIC)) if light_text else big,
        _binary(
            band.resize((round(size[0] * 0.75), 72), Image.Resampling.BICUBIC).filter(
                ImageFilter.GaussianBlur(72 / band.height / 3)
            ),
            colour + (255 - colour) * 0.3 if light_text else colour * 0.7,
            light_text,
        ),
    ]
    readings: list[tuple[str, ParsedStrip]] = []
    for variant in variants:
        text = _tesseract(exe, variant, psm=7)
        parsed = parse_strip_text(text, now=now)
        readings.append((text, parsed))
        if _agreed(readings):
            break
    return _settle(readings, place, rows[1] - rows[0], now)


def _binary(image: Image.Image, cut: float, light_text: bool) -> Image.Image:
    table = [
        (0 if value > cut else 255) if light_text else (0 if value < cut else 255) for value in range(256)
    ]
    return image.point(table)


def _read_overlay(exe: str, rgb: np.ndarray, now: datetime) -> StripReading:
    """Text printed over the picture: locate the line, then read it several ways and vote."""
    height, width = rgb.shape[:2]
    search = max(_BAND_MIN_ROWS * 2, round(_OVERLAY_SEARCH_SHARE * height))
    for y0 in (height - search, 0):
        line = _locate_line(exe, rgb[y0 : y0 + search].min(axis=2))
        if line is None:
            continue
        top, bottom, left, right = line
        text_h = max(1, bottom - top)
        # The camera name sits left of the date on every layout seen; keep the whole left part.
        centre = (left + right) / 2
        x_a = 0 if centre < width / 2 else max(0, left - width // 2)
        x_b = min(width, right + 3 * text_h) if centre < width / 2 else width
        readings: list[tuple[str, ParsedStrip]] = []
        for pad_share, text_px, low, gamma in _OVERLAY_VARIANTS:
            pad = max(2, round(text_h * pad_share))
            y_a, y_b = max(0, y0 + top - pad), min(height, y0 + bottom + pad)
            scale = text_px / text_h
            size = (max(1, round((x_b - x_a) * scale)), max(1, round((y_b - y_a) * scale)))
            # Upscale the colour crop first, then take the darkest channel: white glyphs stay
            # white in all three, green and brown scenery is dark in at least one.
            crop = Image.fromarray(np.ascontiguousarray(rgb[y_a:y_b, x_a:x_b]))
            big = np.asarray(crop.resize(size, Image.Resampling.LANCZOS)).min(axis=2)
            stretched = np.clip((big.astype(np.float32) - low) / (255.0 - low), 0.0, 1.0) ** gamma
            text = _tesseract(exe, Image.fromarray((255 * (1 - stretched)).astype(np.uint8)), psm=7)
            readings.append((text, parse_strip_text(text, now=now)))
        reading = _settle(readings, "overlay", text_h, now)
        if reading.captured_at is not None:
            return reading
    return StripReading(status="no_strip", problem="no strip band and no printed date found")


# White text over a scene, each as (margin around the line / its height, glyph height in px,
# darkest grey kept, gamma): stretching the top of the grey range leaves grass and sky
# highlights grey and glyph cores black; each preparation misreads other glyphs, so they vote.
_OVERLAY_VARIANTS: tuple[tuple[float, int, float, float], ...] = tuple(
    (pad, px, low, gamma)
    for pad in (0.25, 0.4)
    for px in (40, 50)
    for low, gamma in ((200.0, 2.0), (215.0, 1.0), (215.0, 2.0), (200.0, 1.0))
)


def _locate_line(exe: str, region: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) in region pixels of the text line that holds a date or time."""
    stretched = np.clip((region.astype(np.float32) - 180.0) / 75.0, 0.0, 1.0) ** 2
    image = Image.fromarray((255 * (1 - stretched)).astype(np.uint8))
    image = image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
    lines: dict[tuple[str, str, str], list[tuple[float, str, int, int, int, int]]] = {}
    for row in _tesseract(exe, image, psm=11, tsv=True).splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        left, top, width, height = (int(cells[i]) - (_PAD if i in (6, 7) else 0) for i in (6, 7, 8, 9))
        word = (float(cells[10]), cells[11].strip(), top, top + height, left, left + width)
        lines.setdefault((cells[2], cells[3], cells[4]), []).append(word)
    for words in sorted(lines.values(), key=lambda ws: -sum(w[0] for w in ws)):
        if not any(sum(ch.isdigit() for ch in w[1]) >= 4 or re.match(r"\d{1,2}:\d{2}", w[1]) for w in words):
            continue
        # Rows from the confidently read words only: grass touching a glyph inflates its box.
        sure = [w for w in words if w[0] >= 50] or words
        return (
            int(np.median([w[2] for w in sure])) // 2,
            -(-int(np.median([w[3] for w in sure])) // 2),
            min(w[4] for w in words) // 2,
            -(-max(w[5] for w in words) // 2),
        )
    return None


def _agreed(readings: Sequence[tuple[str, ParsedStrip]]) -> bool:
    """Enough readings of a band: the first alone when it is complete, else two that agree."""
    first = readings[0][1]
    if len(readings) == 1:
        return first.captured_at is not None and first.camera_name is not None
    times = Counter(p.captured_at for _, p in readings if p.captured_at is not None)
    return bool(times) and max(times.values()) >= 2


_T = TypeVar("_T")


def _vote(values: Iterable[_T | None]) -> _T | None:
    """The most frequent value; a tie goes to the earliest (the preparations are ordered by merit)."""
    listed = [v for v in values if v is not None]
    if not listed:
        return None
    counts = Counter(listed)
    best = max(counts.values())
    return next(v for v in listed if counts[v] == best)


class _Settled(TypedDict):
    """The fields of a `StripReading` that `_settle` decides whatever the outcome."""

    camera_name: str | None
    temperature_f: int | None
    day: date | None
    clock: timedelta | None
    text: str
    place: BandPlace
    text_height_px: int


def _settle(
    readings: Sequence[tuple[str, ParsedStrip]], place: BandPlace, text_height: int, now: datetime
) -> StripReading:
    """One reading out of several, field by field: the date most of them read, the hour and
    minute most of them read, the seconds most of those read; name and temperature likewise."""
    parsed = [p for _, p in readings]
    day = _vote(p.day for p in parsed)
    minute = _vote((p.clock.seconds // 60) if p.clock is not None else None for p in parsed)
    clock: timedelta | None = None
    has_seconds = False
    if minute is not None:
        same = [p for p in parsed if p.clock is not None and p.clock.seconds // 60 == minute]
        with_seconds = _vote(p.clock for p in same if p.has_seconds)
        has_seconds = with_seconds is not None
        clock = with_seconds if has_seconds else timedelta(minutes=int(minute))
    text = next((t for t, p in readings if p.day == day and p.clock == clock), "") or next(
        (t for t, _ in readings if t), ""
    )
    # Name and temperature from the readings that read the chosen date: a reading that missed
    # the date also misplaces where the name ends ("Obe 10/323").
    agreeing = [p for p in parsed if p.day == day] or parsed
    name = _vote(p.camera_name for p in agreeing)
    temperature = _vote(p.temperature_f for p in agreeing)
    common: _Settled = {
        "camera_name": name,
        "temperature_f": temperature,
        "day": day,
        "clock": clock,
        "text": text,
        "place": place,
        "text_height_px": text_height,
    }
    if day is not None and clock is not None:
        captured = datetime.combine(day, datetime.min.time()) + clock
        if captured <= now + timedelta(days=1):
            return StripReading(captured_at=captured, has_seconds=has_seconds, status="read", **common)
    problems = [p.problem for p in parsed if p.problem]
    if problems:
        return StripReading(problem=problems[0], status="invalid_date", **common)
    problem = "no date and time in the strip" if text else "no text read"
    return StripReading(problem=problem, status="no_time", **common)


def _tesseract(exe: str, image: Image.Image, *, psm: int, tsv: bool = False) -> str:
    padded = ImageOps.expand(image.convert("L"), _PAD, fill=255)
    buffer = io.BytesIO()
    padded.save(buffer, format="PNG")
    args = [exe, "stdin", "stdout", "--psm", str(psm), "-c", f"tessedit_char_whitelist={_TEXT_CHARS} "]
    if tsv:
        args.append("tsv")
    done = subprocess.run(
        args,
        input=buffer.getvalue(),
        capture_output=True,
        timeout=_TESSERACT_TIMEOUT_S,
        env={**os.environ, **_TESSERACT_ENV},
        check=False,
    )
    if done.returncode != 0:
        raise subprocess.SubprocessError(done.stderr.decode(errors="replace").strip()[-300:])
    return done.stdout.decode(errors="replace").strip()


# --- parsing -------------------------------------------------------------------------------

# A slash between digits also reads as a degree sign ("10°18") on busy backgrounds.
_SEP = r"\s*[/\-.°]\s*"
# Year first (Victure, Simmons, most Asian-made cameras). OCR may drop a separator: then month
# and day are two digits each ("2020 1018"), and nothing but a space may follow.
_DATE_YMD = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*[/\-.°]?\s*(\d{2})\s*[/\-.°]?\s*(\d{2})(?=\s|$)")
_DATE_YMD_STRICT = re.compile(rf"(?<!\d)((?:19|20)\d{{2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?!\d)")
# Month or day first, two- or four-digit year (Moultrie: 10/07/22). "11/27/242:18PM": the year
# takes two digits and leaves "2:18PM" to the time.
_DATE_MDY = re.compile(rf"(?<!\d)(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}}(?![\d:])|\d{{2}})")
_TIME_12 = re.compile(
    r"(?<![\d/])(\d{1,2})\s*[:.]?\s*(\d{2})(?:\s*[:.]\s*(\d{2}))?\s*([AaPp])\s*\.?\s*[MmNn]\b"
)
# A 12 h time rejected above ("13:21PM") must not come back as a 24 h one.
_TIME_24 = re.compile(
    r"(?<![\d/])(\d{1,2})\s*[:.]\s*(\d{2})(?:\s*[:.]\s*(\d{2}))?(?![\d/])(?!\s*[AaPp]\s*\.?\s*[MmNn]\b)"
)
_TEMPERATURE = re.compile(r"(-{0,2}\s?\d{1,3})\s*[°º*o]?\s*([FC])\b")


def parse_strip_text(text: str, *, now: datetime | None = None, day_first: bool = False) -> ParsedStrip:
    """Date, time, camera name and temperature in one strip's OCR text.

    Dates: YYYY/MM/DD (separators / - . or lost) and MM/DD/YY(YY), or DD/MM/YY(YY) with
    `day_first` (the US-market cameras seen so far print month first). Times: 12 h with AM/PM
    (a lost colon is tolerated: "0527PM") or 24 h with colons, seconds optional. A date that
    does not exist (month 13, 30 February) or lies more than a day after `now` is rejected and
    said so in `problem`, never swapped or repaired into another date.
    """
    now = now or datetime.now()
    # A slash touching a 1 reads as T or f ("10T8" for "10/18"); only between digits is it that.
    text = re.sub(r"(?<=\d)°?[Tf](?=\d)", "/1", text)
    day, date_span, problem = _find_date(text, now, day_first)
    clock, has_seconds, time_span, time_problem = _find_time(text, date_span)
    problem = problem or time_problem
    captured = None
    if day is not None and clock is not None:
        captured = datetime.combine(day, datetime.min.time()) + clock
        if captured > now + timedelta(days=1):
            problem, captured = f"strip time {captured:%Y-%m-%d %H:%M} lies in the future", None
    temperature, temp_span = _temperature(text)
    spans = [s for s in (date_span, time_span, temp_span) if s is not None]
    name = _camera_name(text[: min(s[0] for s in spans)]) if spans else None
    return ParsedStrip(
        captured_at=captured,
        has_seconds=has_seconds,
        day=day,
        clock=clock,
        camera_name=name,
        temperature_f=temperature,
        problem=problem if captured is None else None,
    )


def _find_date(
    text: str, now: datetime, day_first: bool
) -> tuple[date | None, tuple[int, int] | None, str | None]:
    """The first valid date, its span and None; or None, the span of the first date-like text
    (so it is neither a time nor part of the name) and why it was rejected."""
    problem = None
    rejected: tuple[int, int] | None = None
    for pattern, order in ((_DATE_YMD_STRICT, "ymd"), (_DATE_MDY, "mdy"), (_DATE_YMD, "ymd")):
        for match in pattern.finditer(text):
            rejected = rejected or match.span()
            a, b, c = match.groups()
            if order == "ymd":
                candidates = [(int(a), int(b), int(c))]
            else:
                year = int(c) + (2000 if len(c) == 2 else 0)
                candidates = [(year, int(b), int(a)) if day_first else (year, int(a), int(b))]
            for year, month, mday in candidates:
                try:
                    found = date(year, month, mday)
                except ValueError:
                    problem = problem or f"strip date {match.group(0).strip()!r} cannot exist"
                    continue
                if found > now.date() + timedelta(days=1):
                    problem = problem or f"strip date {found:%Y-%m-%d} lies in the future"
                    continue
                return found, match.span(), None
    return None, rejected, problem


def _find_time(
    text: str, date_span: tuple[int, int] | None
) -> tuple[timedelta | None, bool, tuple[int, int] | None, str | None]:
    # The date's own digits must not be read as a time ("2021/10/22" holds "10/22").
    masked = text
    if date_span is not None:
        masked = text[: date_span[0]] + " " * (date_span[1] - date_span[0]) + text[date_span[1] :]
    problem = None
    for pattern, twelve in ((_TIME_12, True), (_TIME_24, False)):
        for match in pattern.finditer(masked):
            hour, minute = int(match.group(1)), int(match.group(2))
            second = int(match.group(3)) if match.group(3) else 0
            if twelve:
                if not 1 <= hour <= 12:
                    problem = problem or f"strip time {match.group(0).strip()!r} cannot exist"
                    continue
                hour = hour % 12 + (12 if match.group(4).upper() == "P" else 0)
            if hour > 23 or minute > 59 or second > 59:
                problem = problem or f"strip time {match.group(0).strip()!r} cannot exist"
                continue
            clock = timedelta(hours=hour, minutes=minute, seconds=second)
            return clock, match.group(3) is not None, match.span(), None
    return None, False, None, problem


def _temperature(text: str) -> tuple[int | None, tuple[int, int] | None]:
    for match in _TEMPERATURE.finditer(text):
        digits = match.group(1).replace(" ", "")
        negative = digits.startswith("-")
        number = digits.lstrip("-")
        value = int(number)
        if match.group(2) == "C":
            value = round(value * 9 / 5 + 32) if not negative else round(-value * 9 / 5 + 32)
            negative = False
        lo, hi = _TEMP_RANGE_F
        if not negative and value > hi and len(number) == 3:
            # The moon-phase icon just left of the number reads as a digit (a 9): "948°F" is 48 °F.
            value = int(number[1:])
        value = -value if negative else value
        if lo <= value <= hi:
            return value, match.span()
    return None, None


def _camera_name(prefix: str) -> str | None:
    """The user-set camera name: the words before the date, time and temperature, minus logos."""
    words = prefix.split()
    # Moultrie's logo reads in many ways ("MouiTRIEMOBILE", "mourraiceMOBILE"): everything up to
    # the last word ending in MOBILE is logo.
    for i in range(len(words) - 1, -1, -1):
        if re.search(r"[MN][O0]B[I1l]LE$", words[i].upper()) or _close(words[i], _DROPPED_LOGOS):
            words = words[i + 1 :]
            break
    for i, word in enumerate(words):
        brand = _close(word, _KEPT_BRANDS)
        if brand is not None:
            # A logo's glyph before the brand word reads as a short word ("PS", "GO"): drop it.
            words = [brand, *words[i + 1 :]]
            break
    # A temperature the pattern missed ("42° E") is no name; nor is a moon icon read as "O".
    words = [w for w in words if re.search(r"[A-Za-z0-9]", w) and "°" not in w]
    name = " ".join(words).strip(" .:-/")
    if len(re.sub(r"[^A-Za-z0-9]", "", name)) < 2 or not re.search(r"[A-Za-z]", name):
        return None
    return name


def _close(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str | None:
    found = difflib.get_close_matches(word.upper(), list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


# --- camera names across photos ----------------------------------------------------------


def settle_names(readings: Sequence[tuple[str, str | None, int]]) -> list[str | None]:
    """Camera names of many photos, each corrected from the clearer readings of its camera.

    `readings` holds (group, name read, text height in pixels) per photo; a group is what is
    sure to be one kind of camera (EXIF make and model). A name read off a small strip (a
    640x360 thumbnail renders "Olpe" with a 1-px "l") is replaced by a name read off a taller
    strip of the same group when the two are close (a similarity of 0.5 or more) and differ
    only in letters: "CAM1" and "CAM2" are two cameras, never merged.
    """
    result: list[str | None] = [name for _, name, _ in readings]
    by_group: dict[str, list[int]] = {}
    for index, (group, name, _) in enumerate(readings):
        if name:
            by_group.setdefault(group, []).append(index)
    for indexes in by_group.values():
        # Each spelling's weight: the strip height it was read from, summed over photos.
        weight: Counter[str] = Counter()
        tallest: dict[str, int] = {}
        for i in indexes:
            name, height = readings[i][1], readings[i][2]
            assert name is not None
            weight[name] += height
            tallest[name] = max(tallest.get(name, 0), height)
        for i in indexes:
            name, height = readings[i][1], readings[i][2]
            assert name is not None
            better = [
                other
                for other in weight
                if other != name
                and tallest[other] >= height
                and weight[other] > weight[name]
                and _digits(other) == _digits(name)
                and difflib.SequenceMatcher(None, other.upper(), name.upper()).ratio() >= 0.5
            ]
            if better:
                result[i] = max(better, key=lambda other: (tallest[other], weight[other]))
    return result


def _digits(name: str) -> str:
    return "".join(ch for ch in name if ch.isdigit())
