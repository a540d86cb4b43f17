"""Read MegaDetector batch output (format 1.0 to 1.x) into typed records.

Spec: https://lila.science/megadetector-output-format. Real files are looser
than the spec: extra keys at every level, `max_detection_conf` (dropped from
the spec in 1.3), `detections: null` next to a `failure`, Windows paths,
boxes a hair outside the frame. One bad detection or image entry becomes a
`Problem` and the rest of the file still loads; only a file that cannot be
read as MegaDetector output at all raises `DetectionsFileError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deerid.domain.classes import DeerClass, Kind, UnknownClassError, deer_class_for_label, kind_for_category
from deerid.errors import Invalid
from deerid.ingest.paths import normalise_relpath

BBox = tuple[float, float, float, float]
"""Normalised `(x_min, y_min, width, height)`, origin top-left."""

_DETECTION_KEYS = frozenset({"category", "conf", "bbox", "classifications"})
_IMAGE_KEYS = frozenset({"file", "detections", "failure"})


class DetectionsFileError(Invalid):
    """The detections file cannot be read as MegaDetector batch output."""


@dataclass(frozen=True)
class Problem:
    """Something in the detections file that was skipped, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class MDDetection:
    index: int
    """Position in the image's `detections` array as written (dropped ones leave gaps)."""
    category: str
    """Detection category name, lower case: animal, person or vehicle."""
    conf: float
    bbox: BBox
    """Clipped to the image: every value in [0, 1], width and height > 0."""
    kind: Kind
    deer_class: DeerClass | None
    class_label: str | None
    """Top classification's category name as written in the file."""
    class_conf: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys beyond the format, e.g. `individual`, `difficult`, `label`, `frame_number`."""


@dataclass(frozen=True)
class MDImage:
    file: str
    """As written, passed through `normalise_relpath`."""
    detections: list[MDDetection]
    failure: str | None
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Image-level keys beyond the format, e.g. `max_detection_conf`, `datetime`."""


@dataclass(frozen=True)
class MDBatch:
    format_version: str
    detector: str | None
    images: list[MDImage]
    problems: list[Problem]
    """Every skipped detection or image entry, plus file-level oddities."""
    detection_categories: dict[str, str] = field(default_factory=dict)
    classification_categories: dict[str, str] = field(default_factory=dict)
    classifier: str | None = None


def load_detections(path: Path) -> MDBatch:
    """Parse a MegaDetector batch output file.

    Raises `DetectionsFileError` when the file is missing or unreadable, is not
    JSON, or is not MegaDetector batch output (e.g. a COCO file, a bare list,
    a format major version other than 1).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DetectionsFileError(f"cannot read detections file {path}: {exc.strerror or exc}") from exc
    try:
        # utf-8-sig: files saved by Windows tools often start with a BOM.
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DetectionsFileError(f"detections file {path} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DetectionsFileError(
            f"detections file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError:
        # Python's parser recurses once per [ or {; MegaDetector output is a few levels deep.
        raise DetectionsFileError(
            f"detections file {path} is nested too deeply to be MegaDetector output "
            "(thousands of levels of [ or {)"
        ) from None
    return parse_detections(data, source=str(path))


def parse_detections(data: Any, source: str = "<data>") -> MDBatch:
    """Parse already-decoded MegaDetector batch output; see `load_detections`."""
    detection_categories, classification_categories, format_version, problems = _parse_header(data, source)

    images: list[MDImage] = []
    first_index_of: dict[str, int] = {}
    for position, entry in enumerate(data["images"]):
        where = f"images[{position}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, f"image entry is a {type(entry).__name__}, not an object"))
            continue
        raw_file = entry.get("file")
        if not isinstance(raw_file, str) or not raw_file.strip():
            problems.append(Problem(where, f"image entry has no usable 'file' ({raw_file!r})"))
            continue
        try:
            file = normalise_relpath(raw_file)
        except ValueError:
            problems.append(Problem(where, f"image entry has no usable 'file' ({raw_file!r})"))
            continue
        if file in first_index_of:
            problems.append(
                Problem(file, f"duplicate entry {where} ignored; kept images[{first_index_of[file]}]")
            )
            continue
        first_index_of[file] = position
        image = _parse_image(entry, file, detection_categories, classification_categories)
        problems.extend(Problem(file, reason) for reason in image.problems)
        images.append(image)

    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return MDBatch(
        format_version=format_version,
        detector=_optional_str(info.get("detector")),
        images=images,
        problems=problems,
        detection_categories=detection_categories,
        classification_categories=classification_categories,
        classifier=_optional_str(info.get("classifier")),
    )


def _parse_header(data: Any, source: str) -> tuple[dict[str, str], dict[str, str], str, list[Problem]]:
    if isinstance(data, list):
        raise DetectionsFileError(
            f"{source}: top level is a JSON list; MegaDetector batch output is an object with 'images'"
        )
    if not isinstance(data, dict):
        raise DetectionsFileError(f"{source}: top level is a {type(data).__name__}, not a JSON object")
    if "detection_categories" not in data and "annotations" in data and "categories" in data:
        raise DetectionsFileError(
            f"{source}: this looks like a COCO file (annotations, categories), not MegaDetector batch output"
        )
    if "images" not in data:
        raise DetectionsFileError(f"{source}: no 'images' key, so not MegaDetector batch output")
    if not isinstance(data["images"], list):
        raise DetectionsFileError(f"{source}: 'images' is a {type(data['images']).__name__}, not a list")

    problems: list[Problem] = []
    info = data.get("info")
    version_value = info.get("format_version") if isinstance(info, dict) else None
    if version_value is None:
        # Early batch-API files are the only ones without it; they are 1.0 in content.
        format_version = "1.0"
        problems.append(Problem("", "no info.format_version; read as 1.0"))
    else:
        format_version = str(version_value).strip()
        major = format_version.split(".", 1)[0]
        if major != "1":
            raise DetectionsFileError(
                f"{source}: unsupported MegaDetector format_version {format_version!r} (only 1.x is known)"
            )

    if "detection_categories" not in data:
        raise DetectionsFileError(f"{source}: no 'detection_categories', so not MegaDetector batch output")
    detection_categories = _category_map(data["detection_categories"], "detection_categories", source)
    classification_categories = (
        _category_map(data["classification_categories"], "classification_categories", source)
        if data.get("classification_categories") is not None
        else {}
    )
    return detection_categories, classification_categories, format_version, problems


def _category_map(value: Any, name: str, source: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise DetectionsFileError(f"{source}: '{name}' is a {type(value).__name__}, not an object")
    categories: dict[str, str] = {}
    for key, label in value.items():
        if not isinstance(label, str) or not label.strip():
            raise DetectionsFileError(f"{source}: '{name}' has an unusable name {label!r} for id {key!r}")
        categories[str(key).strip()] = label
    return categories


def _parse_image(
    entry: dict[str, Any],
    file: str,
    detection_categories: dict[str, str],
    classification_categories: dict[str, str],
) -> MDImage:
    problems: list[str] = []
    failure_value = entry.get("failure")
    failure = None if failure_value is None else str(failure_value)
    extra = {key: value for key, value in entry.items() if key not in _IMAGE_KEYS}

    raw_detections = entry.get("detections")
    detections: list[MDDetection] = []
    if raw_detections is None:
        # With a failure, null detections is what the spec asks for; without one
        # the image was never reported on, which is worth saying.
        if failure is None:
            problems.append("no 'detections' and no 'failure'; read as no detections")
        return MDImage(file=file, detections=detections, failure=failure, problems=problems, extra=extra)
    if not isinstance(raw_detections, list):
        problems.append(f"'detections' is a {type(raw_detections).__name__}, not a list; all skipped")
        return MDImage(file=file, detections=detections, failure=failure, problems=problems, extra=extra)

    for index, raw in enumerate(raw_detections):
        try:
            detections.append(_parse_detection(index, raw, detection_categories, classification_categories))
        except _SkipDetection as skip:
            problems.append(f"detection {index} skipped: {skip}")
    return MDImage(file=file, detections=detections, failure=failure, problems=problems, extra=extra)


class _SkipDetection(Exception):
    """One detection is unusable; its message is the reason shown to the user."""


def _parse_detection(
    index: int,
    raw: Any,
    detection_categories: dict[str, str],
    classification_categories: dict[str, str],
) -> MDDetection:
    if not isinstance(raw, dict):
        raise _SkipDetection(f"entry is a {type(raw).__name__}, not an object")

    category_id = str(raw.get("category", "")).strip()
    if category_id not in detection_categories:
        known = ", ".join(sorted(detection_categories)) or "none"
        raise _SkipDetection(
            f"unknown category id {raw.get('category')!r} (detection_categories has {known})"
        )
    category = detection_categories[category_id].strip().lower()
    try:
        kind = kind_for_category(category)
    except UnknownClassError as exc:
        raise _SkipDetection(f"category {category!r} is not animal, person or vehicle") from exc

    conf = _number(raw.get("conf"))
    if conf is None or not 0.0 <= conf <= 1.0:
        raise _SkipDetection(f"confidence {raw.get('conf')!r} is not a number in [0, 1]")

    bbox = _clip_bbox(raw.get("bbox"))

    class_label, class_conf = _top_classification(raw.get("classifications"), classification_categories)
    deer_class: DeerClass | None = None
    if kind is Kind.ANIMAL:
        if class_label is None:
            # Plain detector output on deer photos: every animal is a deer until a
            # classifier says otherwise.
            kind, deer_class = Kind.DEER, DeerClass.UNKNOWN
        else:
            deer_class = deer_class_for_label(class_label)
            if deer_class is not None:
                kind = Kind.DEER

    extra = {key: value for key, value in raw.items() if key not in _DETECTION_KEYS}
    return MDDetection(
        index=index,
        category=category,
        conf=conf,
        bbox=bbox,
        kind=kind,
        deer_class=deer_class,
        class_label=class_label,
        class_conf=class_conf,
        extra=extra,
    )


def _clip_bbox(value: Any) -> BBox:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise _SkipDetection(f"bbox must be 4 numbers [x_min, y_min, width, height], got {value!r}")
    numbers = [n for n in map(_number, value) if n is not None]
    if len(numbers) != 4:
        raise _SkipDetection(f"bbox has a missing, non-numeric or non-finite value: {value!r}")
    x, y, w, h = numbers
    if w <= 0 or h <= 0:
        raise _SkipDetection(f"bbox has zero or negative width or height: {value!r}")
    # Detectors emit coordinates like -5e-07 or a right edge of 1.0001; clipping
    # those is expected, so it is not reported.
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(1.0, x + w), min(1.0, y + h)
    if x1 <= x0 or y1 <= y0:
        raise _SkipDetection(f"bbox lies entirely outside the image: {value!r}")
    # Only a clipped side is recomputed, so untouched boxes keep the exact values written.
    width = w if (x0, x1) == (x, x + w) else x1 - x0
    height = h if (y0, y1) == (y, y + h) else y1 - y0
    return (x0, y0, width, height)


def _top_classification(
    value: Any, classification_categories: dict[str, str]
) -> tuple[str | None, float | None]:
    if value is None or value == []:
        return None, None
    if not isinstance(value, list):
        raise _SkipDetection(f"classifications must be a list of [id, conf] pairs, got {value!r}")
    best: tuple[str, float] | None = None
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _SkipDetection(f"classification entry must be [id, conf], got {pair!r}")
        class_id = str(pair[0]).strip()
        if class_id not in classification_categories:
            raise _SkipDetection(f"classification id {pair[0]!r} is not in classification_categories")
        class_conf = _number(pair[1])
        if class_conf is None or not 0.0 <= class_conf <= 1.0:
            raise _SkipDetection(f"classification confidence {pair[1]!r} is not a number in [0, 1]")
        # The spec says descending order; taking the max costs nothing and
        # survives writers that do not sort.
        if best is None or class_conf > best[1]:
            best = (classification_categories[class_id], class_conf)
    assert best is not None
    return best


def _number(value: Any) -> float | None:
    # bool is an int subclass; a true/false confidence is a writer bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
