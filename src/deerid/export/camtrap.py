"""`deerid export camtrap-dp`: a Camera Trap Data Package (Camtrap DP 1.0.2).

Tables: deployments.csv, media.csv, observations.csv (the standard's three) and individuals.csv
(deerid's deer, an extra resource the standard allows). The mapping is in docs/export.md.
The package names the standard's own profile and table-schema URLs, as a package must; the
same schemas written from the standard's field list ship in `schemas/` for checking offline
(`local_descriptor`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from deerid import __version__
from deerid.core.files import atomic_path
from deerid.db.tables import Assignment
from deerid.domain.classes import DeerClass, deer_class_for_label
from deerid.export.common import (
    ExportOptions,
    check_target_folder,
    csv_chunks,
    deployment_id,
    number,
    stamp,
    stream_zip,
)
from deerid.store import export as store
from deerid.store.export import BoxRow, DeploymentSpan

VERSION = "1.0.2"
_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE = f"{_BASE}/camtrap-dp-profile.json"
SCHEMAS_DIR = Path(__file__).parent / "schemas"
TABLES = ("deployments", "media", "observations")
DEER_TAXON = "Cervidae"  # deerid tells deer apart, not their species: the family is always right

DEPLOYMENT_FIELDS = (
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
)
MEDIA_FIELDS = (
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
)
OBSERVATION_FIELDS = (
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
)
INDIVIDUAL_FIELDS = (
    "individualID",
    "individualName",
    "sex",
    "firstSeen",
    "lastSeen",
    "sightings",
    "modelID",
    "favoriteMediaID",
    "notes",
)

_LIFE_STAGE = {
    DeerClass.DOE: "adult",
    DeerClass.FAWN: "juvenile",
    DeerClass.YOUNG: "subadult",
    DeerClass.MID: "adult",
    DeerClass.MATURE: "adult",
}
_SEX = {"doe": "female", "buck": "male"}
_TYPE = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
_MEDIATYPE = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff"}


@dataclass
class PackageSummary:
    """What an export wrote, and what keeps the package from being complete."""

    deployments: int = 0
    media: int = 0
    observations: int = 0
    individuals: int = 0
    skipped_photos: int = 0  # no capture time: Camtrap DP requires one
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployments": self.deployments,
            "media": self.media,
            "observations": self.observations,
            "individuals": self.individuals,
            "skipped_photos": self.skipped_photos,
            "warnings": list(self.warnings),
        }


def table_schema(name: str) -> dict[str, Any]:
    """The table schema shipped with deerid (written from the standard's field list)."""
    return json.loads((SCHEMAS_DIR / f"{name}-table-schema.json").read_text(encoding="utf-8"))


def _camera_model(span: DeploymentSpan) -> str:
    parts = [p.strip() for p in (span.make, span.model) if p and p.strip()]
    return "-".join(parts)


def deployment_rows(spans: Iterable[DeploymentSpan], options: ExportOptions) -> Iterator[list[Any]]:
    for span in spans:
        derived = span.stored_id is None
        yield [
            deployment_id(span.stored_id, span.camera_id),
            "" if span.camera_id is None else f"camera-{span.camera_id}",
            span.location or span.name or "unknown camera",
            number(span.latitude, 7),
            number(span.longitude, 7),
            "" if span.uncertainty_m is None else span.uncertainty_m,
            stamp(span.start, options.tz),
            stamp(span.end, options.tz),
            "",
            span.name or "",
            _camera_model(span),
            *[""] * 6,
            "false" if options.timezone is not None else "true",
            "",
            "",
            "",
            f"site:{span.site}" if span.site else "",
            "",
            "derived by deerid from the camera's first and last photo outside stored deployments"
            if derived
            else (span.notes or ""),
        ]


def media_rows(
    rows: Iterable[store.MediaRow], options: ExportOptions, summary: PackageSummary
) -> Iterator[list[Any]]:
    for row in rows:
        summary.media += 1
        path = Path(row.path)
        yield [
            str(row.image_id),
            deployment_id(row.deployment_id, row.camera_id),
            "activityDetection",
            stamp(row.time, options.tz),
            row.path,
            "false",
            path.name,
            _MEDIATYPE.get(path.suffix.lower(), "image/jpeg"),
            "",
            "true" if row.favorite else "false",
            f"time source: {row.time_source}",
        ]


def _classification(box: BoxRow, options: ExportOptions) -> tuple[str, str, str, str]:
    """(method, classified by, timestamp, probability) of the box's identity (or, for a box with
    no deer, of its class)."""
    tz = options.tz
    if box.deer_id is not None:
        if box.confirmed_at is not None or box.assignment == Assignment.MANUAL:
            return "human", "", stamp(box.confirmed_at or box.reidentified_at, tz), ""
        probability = None
        # A founding sighting's similarity is to the nearest *other* deer: no probability of this one.
        if box.assignment != Assignment.NEW and box.similarity is not None and box.model_id:
            probability = options.probability(box.model_id, box.similarity)
        return "machine", box.model_id or "", stamp(box.reidentified_at, tz), number(probability)
    confidence = box.class_conf if box.class_conf is not None else box.detector_conf
    return "machine", "MegaDetector", "", number(confidence, 4)


def _taxon(box: BoxRow) -> str:
    if box.sex is not None:
        return DEER_TAXON
    return "Homo sapiens" if box.category == "person" else ""


def _life_stage_and_sex(box: BoxRow) -> tuple[str, str]:
    if box.sex is None:
        return "", ""
    deer_class = deer_class_for_label(box.class_label) if box.class_label else DeerClass.UNKNOWN
    return _LIFE_STAGE.get(deer_class or DeerClass.UNKNOWN, ""), _SEX.get(box.sex, "")


def _tags(box: BoxRow) -> str:
    tags = []
    if box.class_label:
        tags.append(f"class:{box.class_label}")
    tags.append(f"status:{box.status}")
    if box.assignment:
        tags.append(f"assignment:{box.assignment}")
    if box.similarity is not None:
        tags.append(f"similarity:{number(box.similarity, 4)}")
    if box.track_id is not None:
        tags.append(f"track:{box.track_id}")
    # Tags are a pipe-separated list: a label's own pipes would split it.
    return " | ".join(t.replace("|", "/") for t in tags)


def _bbox(box: BoxRow) -> list[str]:
    x, y, w, h = box.bbox
    if w <= 0 or h <= 0:
        return ["", "", "", ""]
    return [number(x), number(y), number(w), number(h)]


def _media_observation(box: BoxRow, options: ExportOptions) -> list[Any]:
    when = stamp(box.time, options.tz)
    life_stage, sex = _life_stage_and_sex(box)
    method, by, at, probability = _classification(box, options)
    return [
        f"box-{box.detection_id}",
        deployment_id(box.deployment_id, box.camera_id),
        str(box.image_id),
        "" if box.event_id is None else str(box.event_id),
        when,
        when,
        "media",
        _TYPE.get(box.category, "unknown"),
        "",
        _taxon(box),
        1,
        life_stage,
        sex,
        "",
        "" if box.deer_id is None else str(box.deer_id),
        "",
        "",
        "",
        *_bbox(box),
        method,
        by,
        at,
        probability,
        _tags(box),
        "",
    ]


@dataclass
class _Group:
    """The boxes of one animal (or one kind of other animal) within one event."""

    first: BoxRow
    boxes: int = 0
    per_photo: dict[int, int] = field(default_factory=dict)
    human: bool = True  # every box confirmed by a person
    best_probability: float | None = None


def _group_key(box: BoxRow) -> tuple[Any, ...]:
    if box.sex is not None:
        if box.deer_id is not None:
            return ("deer", box.deer_id)
        return ("track", box.track_id) if box.track_id is not None else ("box", box.detection_id)
    return ("other", box.category, box.class_label or "")


def _event_observations(event_boxes: list[BoxRow], options: ExportOptions) -> Iterator[list[Any]]:
    groups: dict[tuple[Any, ...], _Group] = {}
    for box in event_boxes:
        group = groups.setdefault(_group_key(box), _Group(first=box))
        group.boxes += 1
        group.per_photo[box.image_id] = group.per_photo.get(box.image_id, 0) + 1
        method, _, _, probability = _classification(box, options)
        group.human = group.human and method == "human"
        if probability:
            p = float(probability)
            group.best_probability = p if group.best_probability is None else max(group.best_probability, p)
    first = event_boxes[0]
    start = first.event_start or min(b.time for b in event_boxes if b.time is not None)
    end = first.event_end or max(b.time for b in event_boxes if b.time is not None)
    for n, group in enumerate(groups.values(), start=1):
        box = group.first
        life_stage, sex = _life_stage_and_sex(box)
        identified = box.deer_id is not None
        if identified:
            method = "human" if group.human else "machine"
            by = "" if group.human else (box.model_id or "")
            probability = "" if group.human else number(group.best_probability)
        else:
            method, by, _, probability = _classification(box, options)
        yield [
            f"event-{box.event_id}-{n}",
            deployment_id(box.deployment_id, box.camera_id),
            "",
            str(box.event_id),
            stamp(start, options.tz),
            stamp(end, options.tz),
            "event",
            _TYPE.get(box.category, "unknown"),
            "",
            _taxon(box),
            # An animal seen in several photos is one; other animals count as many as one photo held.
            1 if box.sex is not None else max(group.per_photo.values()),
            life_stage,
            sex,
            "",
            str(box.deer_id) if identified else "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            method,
            by,
            "",
            probability,
            f"boxes:{group.boxes}"
            + (f" | class:{box.class_label.replace('|', '/')}" if box.class_label else ""),
            "",
        ]


def observation_rows(
    boxes: Iterable[BoxRow], options: ExportOptions, summary: PackageSummary
) -> Iterator[list[Any]]:
    """A row per box as it streams past; a row per animal of an event once its last box has."""
    current: list[BoxRow] = []
    for box in boxes:
        if current and box.event_id != current[0].event_id:
            for row in _event_observations(current, options):
                summary.observations += 1
                yield row
            current = []
        if box.event_id is not None:
            current.append(box)
        summary.observations += 1
        yield _media_observation(box, options)
    if current:
        for row in _event_observations(current, options):
            summary.observations += 1
            yield row


def individual_rows(
    rows: Iterable[store.IndividualRow], options: ExportOptions, summary: PackageSummary
) -> Iterator[list[Any]]:
    for deer in rows:
        summary.individuals += 1
        yield [
            str(deer.deer_id),
            deer.name,
            deer.sex,
            stamp(deer.first_seen, options.tz),
            stamp(deer.last_seen, options.tz),
            deer.sightings,
            deer.model_id or "",
            "" if deer.best_image_id is None else str(deer.best_image_id),
            deer.notes or "",
        ]


def _spatial(spans: list[DeploymentSpan]) -> dict[str, Any] | None:
    points = sorted(
        {(s.longitude, s.latitude) for s in spans if s.latitude is not None and s.longitude is not None}
    )
    if not points:
        return None
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    west, east = min(p[0] for p in points), max(p[0] for p in points)
    south, north = min(p[1] for p in points), max(p[1] for p in points)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def descriptor(
    spans: list[DeploymentSpan], options: ExportOptions, created: datetime | None = None
) -> dict[str, Any]:
    """datapackage.json: the standard's profile and schema URLs, with deerid's metadata."""
    resources: list[dict[str, Any]] = [
        {
            "name": name,
            "path": f"{name}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": f"{_BASE}/{name}-table-schema.json",
        }
        for name in TABLES
    ]
    resources.append(
        {
            "name": "individuals",
            "description": "deerid's deer: one row per individual, keyed by observations.individualID.",
            "path": "individuals.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": table_schema("individuals"),
        }
    )
    contributors = [{"title": name, "role": "contributor"} for name in options.contributors] or [
        {"title": "deerid user (replace with the people who made the data)", "role": "contact"}
    ]
    package: dict[str, Any] = {
        "resources": resources,
        "profile": PROFILE,
        "name": "deerid-export",
        "id": str(uuid.uuid4()),
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "title": options.title,
        "contributors": contributors,
        "description": "Trail-camera photos, detections and individual deer identified by deerid.",
        "version": "1.0",
        "sources": [{"title": "deerid", "version": __version__}],
        "project": {
            "title": options.title,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": True,
            "observationLevel": ["media", "event"],
        },
        "taxonomic": [
            {
                "scientificName": DEER_TAXON,
                "taxonRank": "family",
                "vernacularNames": {"eng": "deer"},
            }
        ],
    }
    spatial = _spatial(spans)
    if spatial is not None:
        package["spatial"] = spatial
        package["coordinatePrecision"] = 0.0000001
    if spans:
        package["temporal"] = {
            "start": min(s.start for s in spans).date().isoformat(),
            "end": max(s.end for s in spans).date().isoformat(),
        }
    return package


def _missing_coordinates(spans: list[DeploymentSpan]) -> list[str]:
    return sorted({s.name or "unknown camera" for s in spans if s.latitude is None or s.longitude is None})


def package_members(
    session: Session, options: ExportOptions, summary: PackageSummary
) -> Iterator[tuple[str, Iterable[str]]]:
    """(file name, text chunks) for every file of the package, read from one snapshot. The
    chunks are generators: rows are read from the database only as they are written."""
    store.snapshot(session)
    spans = store.deployment_spans(session)
    summary.deployments = len(spans)
    summary.skipped_photos = store.photos_without_time(session)
    if summary.skipped_photos:
        summary.warnings.append(
            f"{summary.skipped_photos} photos have no capture time and are left out (Camtrap DP requires one)"
        )
    missing = _missing_coordinates(spans)
    if missing:
        summary.warnings.append(
            "no coordinates for "
            + ", ".join(missing)
            + ": Camtrap DP requires latitude and longitude for every deployment; add deployments "
            "(`deerid deployments import`, /api/deployments) or set the camera's coordinates on the "
            "Cameras page, then export again"
        )
    if options.timezone is None:
        summary.warnings.append(
            "times are written as UTC and flagged timestampIssues=true: pass the cameras' timezone "
            "(--timezone America/Chicago) to write them right"
        )
    yield "datapackage.json", [json.dumps(descriptor(spans, options), indent=2, ensure_ascii=False) + "\n"]
    yield "deployments.csv", csv_chunks(DEPLOYMENT_FIELDS, deployment_rows(spans, options))
    yield "media.csv", csv_chunks(MEDIA_FIELDS, media_rows(store.media(session), options, summary))
    yield (
        "observations.csv",
        csv_chunks(OBSERVATION_FIELDS, observation_rows(store.boxes_by_event(session), options, summary)),
    )
    yield (
        "individuals.csv",
        csv_chunks(INDIVIDUAL_FIELDS, individual_rows(store.individuals(session), options, summary)),
    )


def write_package(
    session: Session, out: Path, options: ExportOptions, *, force: bool = False
) -> PackageSummary:
    """Write the package into folder `out` (made if missing; refused if it holds files, unless forced)."""
    check_target_folder(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    summary = PackageSummary()
    for name, chunks in package_members(session, options, summary):
        with atomic_path(out / name) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
    return summary


def package_zip(session: Session, options: ExportOptions) -> Iterator[bytes]:
    """The package as a zip, yielded while it is read and compressed (bounded memory)."""
    yield from stream_zip(package_members(session, options, PackageSummary()))


def local_descriptor(package_dir: Path) -> dict[str, Any]:
    """The package's datapackage.json with the standard's schema URLs replaced by the schemas
    shipped here, and the remote profile left out: a package that frictionless can validate
    with no network. `frictionless.Package(local_descriptor(d), basepath=str(d)).validate()`"""
    package = json.loads((package_dir / "datapackage.json").read_text(encoding="utf-8"))
    for resource in package["resources"]:
        if isinstance(resource.get("schema"), str) and resource["name"] in TABLES:
            resource["schema"] = table_schema(resource["name"])
    package.pop("profile", None)
    return package
