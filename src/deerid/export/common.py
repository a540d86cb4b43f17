"""What both exports share: options, times with a timezone, CSV text in chunks, the output
folder rule and a zip written as it streams."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deerid.core.config import Settings
from deerid.errors import Invalid

# (model id, cosine similarity) -> calibrated same-animal probability, None without a calibration
Probability = Callable[[str, float], float | None]

CHUNK_CHARS = 64 * 1024  # text handed on at a time: large enough for few writes, small enough to stream


class ExportError(Invalid):
    """Something the person asking can fix: a folder that holds files, an unknown timezone."""


def no_probability(_model_id: str, _similarity: float) -> float | None:
    return None


@dataclass(frozen=True)
class ExportOptions:
    # Camera clocks carry no timezone. None: written as UTC and flagged with timestampIssues.
    timezone: tzinfo | None = None
    probability: Probability = no_probability
    title: str = "deerid export"
    contributors: tuple[str, ...] = ()

    @property
    def tz(self) -> tzinfo:
        return self.timezone or UTC


def parse_timezone(name: str | None) -> tzinfo | None:
    """An IANA name (America/Chicago), UTC, or None for unknown."""
    if name is None or not name.strip():
        return None
    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ExportError(f"unknown timezone {name!r}: give an IANA name such as America/Chicago") from exc


def stamp(value: datetime | None, tz: tzinfo) -> str:
    """ISO 8601 with a timezone designator, as Camtrap DP requires. A naive time is a camera's
    wall clock in `tz`; an aware one (a database timestamptz) is converted to it."""
    if value is None:
        return ""
    local = value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
    return local.isoformat(timespec="seconds")


def number(value: float | None, digits: int = 6) -> str:
    if value is None:
        return ""
    return f"{round(float(value), digits):.{digits}f}".rstrip("0").rstrip(".")


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The table as CSV text, handed on in chunks of about CHUNK_CHARS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def check_target_folder(out: Path, *, force: bool) -> None:
    """Refuse a folder that already holds files unless forced: an export must not silently mix
    its tables with another package's, nor overwrite one."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty: choose an empty or new folder, or pass --force to overwrite")


class _Sink(io.RawIOBase):
    """A write-only stream that hands on what was written: the zip is built as it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def stream_zip(members: Iterable[tuple[str, Iterable[str]]]) -> Iterator[bytes]:
    """A zip of (name, text chunks) members, yielded as bytes while it is written. The sink
    cannot seek, so zipfile writes sizes after each member (data descriptors): nothing is
    buffered beyond one chunk."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in members:
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk.encode("utf-8"))
                    data = sink.drain()
                    if data:
                        yield data
            yield sink.drain()
    yield sink.drain()


def deployment_id(stored_id: int | None, camera_id: int | None) -> str:
    """A stored deployment's id; photos that none holds make one deployment per camera."""
    if stored_id is not None:
        return f"dep-{stored_id}"
    return "camera-none" if camera_id is None else f"camera-{camera_id}"


def calibrated_probability(settings: Settings) -> Probability:
    """The same-animal probability each model's calibration gives (read once per model id);
    None for a model with no calibration, whose raw similarity is no probability."""
    from deerid.registry.calibration import load_probability

    fitted: dict[str, Any] = {}

    def probability(model_id: str, similarity: float) -> float | None:
        if model_id not in fitted:
            fitted[model_id] = load_probability(settings, model_id)
        fit = fitted[model_id]
        return None if fit is None else float(fit(float(similarity)))

    return probability
