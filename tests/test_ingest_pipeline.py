"""`deerid ingest` end to end on the real feeder photos, in a real PostgreSQL.

The feeder set: 47 photos, 107 boxes (76 deer, 29 other animals, 2 people);
11 deer boxes are under 50 px on a side (see ANNOTATION_NOTES.md and the
ingest crop tests), so 65 are re-identified.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Camera, Deer, Detection, DetectionStatus, Image
from deerid.pipeline.ingest import ingest
from support.cli import invoke
from support.db import create_database
from support.paths import FEEDER, FEEDER_JSON, MEGADETECTOR

GROUND_TRUTH = json.loads(FEEDER_JSON.read_text())
REQUIRED_KEYS = {
    "photos",
    "photos_new",
    "detections",
    "detections_new",
    "deer_detections",
    "too_small",
    "reidentified",
    "matched",
    "new_deer",
    "skipped",
    "seconds",
}


def last_json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def feeder(pg_root: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deerid, dict, dict]]:  # type: ignore[type-arg]
    """The feeder set ingested twice through the CLI: (its context, first summary, second summary)."""
    data_dir = tmp_path_factory.mktemp("feeder-data")
    settings = Settings(database_url=create_database(pg_root), data_dir=data_dir, device="cpu")
    with Deerid(settings) as deerid:
        first = invoke(deerid, "ingest", str(FEEDER), "--detections", str(FEEDER_JSON), "--json")
        assert first.returncode == 0, first.stderr
        second = invoke(deerid, "ingest", str(FEEDER), "--detections", str(FEEDER_JSON), "--json")
        assert second.returncode == 0, second.stderr
        yield deerid, last_json(first.stdout), last_json(second.stdout)


def test_first_ingest_summary(feeder) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = feeder
    assert first.keys() >= REQUIRED_KEYS
    assert first["photos"] == first["photos_new"] == 47
    assert first["detections"] == first["detections_new"] == 107
    assert first["deer_detections"] == 76
    assert first["too_small"] == 11
    assert first["not_deer"] == 31
    assert first["reidentified"] == first["matched"] + first["new_deer"] == 65
    assert first["new_deer"] >= 1 and first["failed"] == 0
    assert first["skipped"] == []


def test_second_ingest_adds_nothing(feeder) -> None:  # type: ignore[no-untyped-def]
    deerid, first, second = feeder
    assert second["photos"] == 47 and second["photos_new"] == 0 and second["photos_existing"] == 47
    assert second["detections_new"] == 0 and second["reidentified"] == 0 and second["new_deer"] == 0
    with deerid.sessions() as s:
        assert s.execute(sa.select(sa.func.count(Image.id))).scalar() == 47
        assert s.execute(sa.select(sa.func.count(Detection.id))).scalar() == 107
        assert s.execute(sa.select(sa.func.count(Deer.id))).scalar() == first["new_deer"]
        assert s.execute(sa.select(sa.func.sum(Deer.sighting_count))).scalar() == 65


def test_capture_times_and_cameras_come_from_exif(feeder) -> None:  # type: ignore[no-untyped-def]
    deerid, _, _ = feeder
    with deerid.sessions() as s:
        rows = s.execute(sa.select(Image, Camera.name).outerjoin(Camera, Camera.id == Image.camera_id)).all()
    by_name = {Path(img.path).name: (img, cam) for img, cam in rows}
    for entry in GROUND_TRUTH["images"]:
        img, cam = by_name[entry["file"]]
        if entry["datetime"] is None:  # IMG_0988: no usable EXIF: time from its info strip, camera its folder
            assert img.captured_at_source == "strip" and cam == "folder feeder"
            assert img.captured_at == datetime.fromisoformat(entry["strip_datetime"])
        else:
            assert img.captured_at == datetime.fromisoformat(entry["datetime"]), entry["file"]
            assert img.captured_at_source == "exif_datetime_original"
            assert cam == entry["camera"]


def test_classes_sexes_and_statuses(feeder) -> None:  # type: ignore[no-untyped-def]
    deerid, _, _ = feeder
    with deerid.sessions() as s:
        dets = s.execute(sa.select(Detection)).scalars().all()
        deer = s.execute(sa.select(Deer)).scalars().all()
    deer_boxes = [d for d in dets if d.sex is not None]
    assert Counter(d.class_label for d in deer_boxes) == {
        "doe": 20,
        "fawn": 2,
        "young": 1,
        "mid": 9,
        "mature": 12,
        "unknown": 32,
    }
    assert Counter(d.status for d in dets) == {
        DetectionStatus.ASSIGNED: 65,
        DetectionStatus.TOO_SMALL: 11,
        DetectionStatus.NOT_DEER: 31,
    }
    others = Counter(d.class_label for d in dets if d.sex is None)
    assert others["wild_turkey"] == 23 and others[None] == 2  # the two people have no label
    for d in dets:
        if d.status is DetectionStatus.ASSIGNED:
            assert d.embedding is not None and d.model_id and d.deer_id is not None
        else:
            assert d.deer_id is None and d.embedding is None
    # every deer holds one sex, that of its boxes' classes
    sex_of = {d.id: d.sex for d in deer}
    for d in deer_boxes:
        if d.deer_id is not None:
            assert d.sex == sex_of[d.deer_id]
    # and its counts and dates agree with its sightings
    for animal in deer:
        own = [d for d in dets if d.deer_id == animal.id]
        assert animal.sighting_count == len(own)


def test_deer_list_and_show(feeder) -> None:  # type: ignore[no-untyped-def]
    deerid, first, _ = feeder
    listed = invoke(deerid, "deer", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == first["new_deer"]
    assert sum(r["sightings"] for r in rows) == 65
    top = max(rows, key=lambda r: r["sightings"])
    shown = invoke(deerid, "deer", "show", top["id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["id"] == top["id"] and len(detail["sightings"]) == top["sightings"]
    times = [s["captured_at"] for s in detail["sightings"] if s["captured_at"]]
    assert times == sorted(times) and detail["first_seen"] == times[0]
    table = invoke(deerid, "deer", "list")
    assert top["name"] in table.stdout
    missing = invoke(deerid, "deer", "show", "no-such-deer")
    assert missing.returncode == 2 and "no deer matches" in missing.stderr


def _copy_some_feeder(dest: Path, names: list[str]) -> None:
    dest.mkdir(parents=True)
    for name in names:
        shutil.copy(FEEDER / name, dest / name)


def _detections_for(names: list[str]) -> dict:  # type: ignore[type-arg]
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    return data


def test_bad_input_is_reported_and_the_rest_is_kept(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """Tried: a truncated JPEG, a photo listed but missing, a box outside the image,
    a box with an unknown category, a classification id not in the categories."""
    names = ["IMG_2263.JPG", "IMG_2336.JPG", "IMG_3899.JPG", "IMG_4192.JPG"]
    photos = tmp_path / "card"
    _copy_some_feeder(photos, names)
    corrupt = photos / "IMG_4192.JPG"
    corrupt.write_bytes(corrupt.read_bytes()[:5000])  # truncated mid-scan
    data = _detections_for(names)
    data["images"].append({"file": "IMG_9999.JPG", "detections": []})  # listed, not on the card
    boxes = data["images"][0]["detections"]
    boxes.append({"category": "1", "conf": 0.9, "bbox": [1.2, 1.3, 0.1, 0.1]})  # outside the image
    boxes.append({"category": "7", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]})  # unknown category
    boxes.append(
        {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "classifications": [["42", 0.9]]}
    )
    detections = tmp_path / "md.json"
    detections.write_text(json.dumps(data))

    report = ingest(deerid, photos, detections)
    reasons = {(item["file"], item["reason"]) for item in report.skipped}
    files = Counter(f for f, _ in reasons)
    assert files["IMG_4192.JPG"] == 1 and files["IMG_9999.JPG"] == 1 and files["IMG_2263.JPG"] == 3
    assert any("IMG_4192" in r and ("truncated" in r or "cannot read" in r) for _, r in reasons)
    assert report.photos == 4 and report.photos_new == 3
    assert report.reidentified == 3 and report.failed == 0  # the three good deer photos
    with deerid.sessions() as s:
        assert s.execute(sa.select(sa.func.count(Image.id))).scalar() == 3


def test_malformed_detections_file_stores_nothing(deerid: Deerid, tmp_path: Path) -> None:
    bad = tmp_path / "md.json"
    bad.write_text('{"images": [ {"file": "IMG_2263.JPG", ')
    out = invoke(deerid, "ingest", str(FEEDER), "--detections", str(bad))
    assert out.returncode == 2
    assert "not valid JSON" in out.stderr and "Traceback" not in out.stderr
    with deerid.sessions() as s:
        assert s.execute(sa.select(sa.func.count(Image.id))).scalar() == 0


def test_missing_photo_folder_is_a_clear_error(deerid: Deerid, tmp_path: Path) -> None:
    out = invoke(deerid, "ingest", str(tmp_path / "nope"), "--detections", str(FEEDER_JSON))
    assert out.returncode == 2 and "not found" in out.stderr and "Traceback" not in out.stderr


def test_photo_moved_before_reid_fails_that_box_only(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """A photo deleted between storing and re-identification: its box fails with the reason,
    the others are identified, and `reid --all --retry-failed` succeeds once it is back."""
    names = ["IMG_2263.JPG", "IMG_2336.JPG"]
    photos = tmp_path / "card"
    _copy_some_feeder(photos, names)
    detections = tmp_path / "md.json"
    detections.write_text(json.dumps(_detections_for(names)))
    ingest(deerid, photos, detections, reidentify=False)
    moved = photos / "IMG_2336.JPG"
    moved.rename(tmp_path / "away.jpg")
    from deerid.pipeline.reid import reidentify_ids, unassigned

    summary = reidentify_ids(deerid, unassigned(deerid))
    assert summary.as_dict()["failed"] == 1 and summary.as_dict()["new_deer"] == 1
    failed = [r for r in summary.results if r.error]
    assert "IMG_2336.JPG" in (failed[0].error or "")
    (tmp_path / "away.jpg").rename(moved)
    retry = reidentify_ids(deerid, unassigned(deerid, include_failed=True))
    assert retry.as_dict()["failed"] == 0 and len(retry.results) == 1


def test_real_megadetector_output(settings: Settings, deerid: Deerid) -> None:
    """MegaDetector v5a output (format 1.1): low-confidence boxes, no classifications.

    Unclassified animal boxes are deer of class unknown; boxes under the
    detector threshold (0.2) are not stored."""
    report = ingest(deerid, MEGADETECTOR, MEGADETECTOR / "mdv5a.detections.json")
    assert report.photos == report.photos_new == 31 and report.skipped == []
    assert report.detections == 30 and report.below_threshold == 49
    assert report.deer_detections == 30 and report.not_deer == 0
    assert report.too_small == 3 and report.reidentified == 27
    with deerid.sessions() as s:
        labels = set(s.execute(sa.select(Detection.class_label)).scalars())
    assert labels == {"unknown"}

    stricter = settings.model_copy(update={"detection_threshold": 0.8, "database_url": settings.database_url})
    with Deerid(stricter) as other:
        again = ingest(other, MEGADETECTOR, MEGADETECTOR / "mdv5a.detections.json")
    assert again.photos_new == 0 and again.detections_new == 0  # nothing new, nothing lost
    assert again.detections < 30 and again.below_threshold > 49
