"""Data-integrity findings of the reliability probe (../shared/reliability/PROBE.md), each reproduced
on real feeder photos in a real PostgreSQL: F13, F14, F15, F17, F5, F19, F21, F22."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.core.files import sha256_file
from deerid.db.tables import Deer, Detection, DetectionStatus, Image
from deerid.pipeline.ingest import ingest, pixel_digest
from deerid.pipeline.reid import reidentify_ids
from deerid.reid.service import Outcome
from deerid.store import detections as det_store
from deerid.store import photos as photo_store
from support.env import subprocess_env
from support.paths import FEEDER, FEEDER_JSON

TOKEN = "integrity-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEERID = str(Path(sys.executable).parent / "deerid")
REL_JSON = FEEDER.parents[2] / "reliability" / "json"
TWO = ("IMG_2257.JPG", "IMG_2260.JPG")  # one mature buck box each, both large enough to embed


def _detections(tmp_path: Path, names: tuple[str, ...], name: str = "md.json") -> Path:
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    out = tmp_path / name
    out.write_text(json.dumps(data))
    return out


def _card(folder: Path, names: tuple[str, ...] = TWO) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy2(FEEDER / name, folder / name)
    return folder


def _rows(deerid: Deerid, *columns: object, where: object = sa.true()) -> list[sa.Row]:  # type: ignore[type-arg]
    with deerid.sessions() as s:
        return list(s.execute(sa.select(*columns).where(where).order_by(columns[0])).all())  # type: ignore[arg-type]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"api_token": TOKEN})
    with TestClient(create_app(configured), base_url="http://localhost") as c:
        yield c


def test_f13_photos_found_under_a_new_path_are_relocated_and_their_failed_boxes_retried(
    settings: Settings, deerid: Deerid, tmp_path: Path, client: TestClient
) -> None:
    """F13: the photos are stored from card A (interrupted before re-ID), card A goes away, re-ID
    fails for want of the photos, then the same photos are ingested from card B. Before: the stored
    paths kept pointing at card A and every box stayed `failed`. Now the photos are found by SHA-256,
    their location moves to card B, the failed boxes go back to re-ID and succeed; `deerid status`
    and GET /api/images/missing said which photos were gone meanwhile."""
    md = _detections(tmp_path, TWO)
    card_a = _card(tmp_path / "cardA")
    first = ingest(deerid, card_a, md, reidentify=False)
    assert first.photos_new == 2 and first.deer_detections == 2

    shutil.move(card_a, tmp_path / "cardA.ejected")
    pending = _rows(deerid, Detection.id, where=Detection.status == DetectionStatus.PENDING)
    failed = reidentify_ids(deerid, [r[0] for r in pending])
    assert failed.count(Outcome.FAILED) == 2  # the photos are gone: the boxes fail with the reason
    errors = _rows(deerid, Detection.error, where=Detection.status == DetectionStatus.FAILED)
    assert all(photo_store.PhotoCheckError.PREFIX in e[0] and "is gone" in e[0] for e in errors)

    missing = client.get("/api/images/missing").json()
    assert missing["missing"] == 2 and {Path(i["path"]).parent.name for i in missing["images"]} == {"cardA"}
    status = subprocess.run(
        [DEERID, "status"], env=subprocess_env(settings), capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    assert "2 photos are missing" in status.stdout and "cardA/IMG_2257.JPG" in status.stdout

    card_b = _card(tmp_path / "cardB")
    second = ingest(deerid, card_b, md)
    assert second.photos_existing == 2 and second.photos_relocated == 2 and second.photos_new == 0
    assert second.failed == 0 and second.reidentified == 2
    paths = [Path(r[0]) for r in _rows(deerid, Image.path)]
    assert {p.parent for p in paths} == {card_b.resolve()}
    assert {r[0] for r in _rows(deerid, Detection.status, where=Detection.sex.is_not(None))} == {
        DetectionStatus.ASSIGNED
    }
    assert client.get("/api/images/missing").json()["missing"] == 0
    image_id = _rows(deerid, Image.id)[0][0]
    assert client.get(f"/api/images/{image_id}").content == (card_b / "IMG_2257.JPG").read_bytes()


def test_f14_a_path_holding_another_photo_is_never_served_cropped_or_embedded(
    settings: Settings, deerid: Deerid, tmp_path: Path, client: TestClient
) -> None:
    """F14: a card is ingested, then formatted and refilled so its paths hold other photos. Before:
    GET /api/images/1 served the new photo and crops were cut from it. Now size + mtime guard each
    read and the SHA-256 decides on a mismatch: 409 (another photo there) or 410 (gone), never the
    wrong pixels; re-ID refuses to embed it; the next ingest marks the old image missing."""
    md = _detections(tmp_path, TWO)
    sd = _card(tmp_path / "sd")
    ingest(deerid, sd, md, reidentify=False)
    (img1, path1), (img2, path2) = _rows(deerid, Image.id, Image.path)
    det1 = _rows(deerid, Detection.id, where=Detection.image_id == img1)[0][0]
    det2 = _rows(deerid, Detection.id, where=Detection.image_id == img2)[0][0]

    # Only touched (same bytes, new mtime): still served, and the guard is refreshed.
    os.utime(path1, (time.time() - 100, time.time() - 100))
    assert client.get(f"/api/images/{img1}").content == Path(path1).read_bytes()
    assert _rows(deerid, Image.file_mtime, where=Image.id == img1)[0][0] == Path(path1).stat().st_mtime

    # Another photo of the same size at the path: only the hash can tell.
    data = bytearray(Path(path2).read_bytes())
    data[-100] ^= 0xFF
    Path(path2).write_bytes(bytes(data))
    # The card is "formatted": IMG_2257.JPG now holds another camera's photo.
    shutil.copy2(FEEDER / "IMG_3899.JPG", path1)

    for url in (f"/api/images/{img1}", f"/api/detections/{det1}/crop", f"/api/images/{img2}"):
        answer = client.get(url)
        assert answer.status_code == 409, (url, answer.status_code)
        assert "different photo" in answer.json()["detail"]
    assert not list(settings.crops_dir.glob(f"{det1}*.jpg"))  # nothing was cut from the new photo
    assert len(_rows(deerid, Image.id, where=Image.missing_since.is_not(None))) == 2

    summary = reidentify_ids(deerid, [det1, det2])
    assert summary.count(Outcome.FAILED) == 2
    assert all("different photo" in (r.error or "") for r in summary.results)
    assert _rows(deerid, Detection.embedding, where=Detection.id == det1)[0][0] is None

    Path(path1).unlink()
    assert client.get(f"/api/images/{img1}").status_code == 410

    # The refilled card ingested: a new image at the path; the old one stays marked missing.
    shutil.copy2(FEEDER / "IMG_3899.JPG", path1)
    again = ingest(deerid, sd, _detections(tmp_path, ("IMG_3899.JPG",), "md2.json"), reidentify=False)
    assert again.photos_new == 2  # IMG_3899 content at IMG_2257.JPG, and the altered IMG_2260.JPG
    (new_id,) = [
        r[0] for r in _rows(deerid, Image.id, where=Image.sha256 == sha256_file(FEEDER / "IMG_3899.JPG"))
    ]
    assert client.get(f"/api/images/{new_id}").content == (FEEDER / "IMG_3899.JPG").read_bytes()
    assert client.get(f"/api/images/{img1}").status_code == 409
    assert client.get("/api/images/missing").json()["missing"] == 2


def test_f15_a_corrected_box_replaces_the_stored_one_with_history_and_new_assignment(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F15: rerun_v1 stores a 0.05x0.05 "doe" box (re-identified: a doe profile); rerun_v2 corrects
    it to a mature buck at other coordinates and adds a person. Before: "2 (1 new)" and box 0
    silently kept the doe. Now box 0 is replaced, the old version is in `box_history`, it leaves
    the doe (deleted, now empty) and is re-identified as a buck, and the summary counts it."""
    small = _card(tmp_path / "small", ("IMG_2257.JPG",))
    v1 = ingest(deerid, small, REL_JSON / "rerun_v1.json")
    assert v1.detections_new == 1 and v1.reidentified == 1
    with deerid.sessions() as s:
        doe = s.execute(sa.select(Deer.id, Deer.sex)).one()
    assert doe.sex == "doe"
    v2 = ingest(deerid, small, REL_JSON / "rerun_v2.json")
    assert v2.detections == 2 and v2.detections_new == 1 and v2.detections_changed == 1
    assert v2.reidentified == 1
    with deerid.sessions() as s:
        box = s.execute(sa.select(Detection).where(Detection.source_index == 0)).scalar_one()
        assert (box.bbox_x, box.bbox_y, box.bbox_w, box.bbox_h) == (0.0, 0.28, 0.3, 0.665)
        assert box.class_label == "mature" and box.status is DetectionStatus.ASSIGNED
        assert box.box_history is not None and len(box.box_history) == 1
        old = box.box_history[0]
        assert old["bbox"] == [0.0, 0.0, 0.05, 0.05] and old["class_label"] == "doe"
        assert old["status"] == "assigned" and old["deer_id"] == str(doe.id)
        assert s.get(Deer, doe.id) is None  # its only sighting was corrected away
        first_deer = box.deer_id
        assert s.get(Deer, first_deer).sex == "buck"  # type: ignore[union-attr]

    # Same file again: nothing changes.
    same = ingest(deerid, small, REL_JSON / "rerun_v2.json")
    assert same.detections_changed == 0 and same.detections_new == 0

    v3 = json.loads((REL_JSON / "rerun_v2.json").read_text())
    v3["images"][0]["detections"][0]["bbox"] = [0.01, 0.27, 0.3, 0.67]
    (tmp_path / "v3.json").write_text(json.dumps(v3))
    third = ingest(deerid, small, tmp_path / "v3.json")
    assert third.detections_changed == 1 and third.reidentified == 1
    with deerid.sessions() as s:
        box = s.execute(sa.select(Detection).where(Detection.source_index == 0)).scalar_one()
        assert box.bbox_x == 0.01 and box.status is DetectionStatus.ASSIGNED and box.deer_id is not None
        assert [h["deer_id"] for h in box.box_history] == [str(doe.id), str(first_deer)]
        # The deer that lost its only box is gone; one deer holds the corrected box.
        assert s.execute(sa.select(sa.func.count()).select_from(Deer)).scalar_one() == 1
        assert s.execute(sa.select(Deer.sighting_count)).scalar_one() == 1


def test_f17_a_copy_with_only_exif_edited_is_not_counted_again(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F17: a copy of a stored photo with only DateTimeOriginal changed has a new SHA-256. Before:
    a new image, sighting_count +1 and first_seen moved to the fake date. Now the image data hash
    (metadata segments left out) finds the twin: the copy is reported and not stored."""
    original = FEEDER / "IMG_2257.JPG"
    ingest(deerid, _card(tmp_path / "card", ("IMG_2257.JPG",)), _detections(tmp_path, ("IMG_2257.JPG",)))
    raw = original.read_bytes()
    stamp = re.findall(rb"\d{4}:\d{2}:\d{2} \d{2}:\d{2}:\d{2}", raw[:65536])[0]
    (tmp_path / "exif").mkdir()
    copy = tmp_path / "exif" / "IMG_2257_copy.JPG"
    copy.write_bytes(raw.replace(stamp, b"2019:01:01 00:00:00"))
    assert sha256_file(copy) != sha256_file(original)
    assert pixel_digest(copy) == pixel_digest(original) != pixel_digest(FEEDER / "IMG_2260.JPG")

    with deerid.sessions() as s:
        before = s.execute(sa.select(Deer.sighting_count, Deer.first_seen)).all()
    report = ingest(deerid, tmp_path / "exif", REL_JSON / "exifcopy.json")
    assert report.photos_same_pixels == 1 and report.photos_new == 0 and report.matched == 0
    assert any("only its metadata differs" in item["reason"] for item in report.skipped)
    with deerid.sessions() as s:
        assert s.execute(sa.select(Deer.sighting_count, Deer.first_seen)).all() == before
        assert s.execute(sa.select(sa.func.count()).select_from(Image)).scalar_one() == 1


def test_f5_more_boxes_than_one_insert_can_bind(
    settings: Settings, deerid: Deerid, tmp_path: Path, client: TestClient
) -> None:
    """F5: 5042 boxes on one photo need 65,546 bind parameters in one INSERT. Before: the driver
    refused ("number of parameters must be between 0 and 65535") and the ingest aborted. Now the
    rows go in chunks. F18 part: POST /api/detections/move with 100k ids answered 500 for the same
    reason; it now answers 4xx (the list is capped by the schema and moved in chunks)."""
    box = {"category": "2", "conf": 0.9, "bbox": [0.1, 0.1, 0.3, 0.3]}
    md = {
        "info": {"format_version": "1.4"},
        "detection_categories": {"1": "animal", "2": "person"},
        "images": [{"file": "IMG_2257.JPG", "detections": [box] * 5042}],
    }
    (tmp_path / "boxes.json").write_text(json.dumps(md))
    report = ingest(deerid, _card(tmp_path / "small", ("IMG_2257.JPG",)), tmp_path / "boxes.json")
    assert report.detections_new == 5042 and report.not_deer == 5042
    assert _rows(deerid, sa.func.count(Detection.id))[0][0] == 5042

    for n, expected in ((100_000, {404, 422}), (10_000, {404})):
        body = {"detection_ids": list(range(10**9, 10**9 + n))}
        answer = client.post("/api/detections/move", json=body, headers=AUTH)
        assert answer.status_code in expected, answer.text[:300]


def test_f19_concurrent_first_requests_for_one_crop_never_fail(
    settings: Settings, deerid: Deerid, tmp_path: Path, client: TestClient
) -> None:
    """F19: all writers of one crop used one temporary name (`<id>.tmp`), so concurrent first
    requests raced on os.replace and some answered 500. Now each writer has its own name."""
    ingest(deerid, _card(tmp_path / "card"), _detections(tmp_path, TWO), reidentify=False)
    ids = [r[0] for r in _rows(deerid, Detection.id)]
    urls = [f"/api/detections/{i}/crop?size={size}" for i in ids for size in ("card", "full")] * 12
    with ThreadPoolExecutor(8) as pool:
        codes = Counter(pool.map(lambda u: client.get(u).status_code, urls))
    assert codes == Counter({200: len(urls)})
    assert not list(settings.crops_dir.glob("*.tmp"))


def _wait(client: TestClient, upload_id: str) -> dict:  # type: ignore[type-arg]
    for _ in range(600):
        state = client.get(f"/api/uploads/{upload_id}").json()
        if state["status"] not in ("queued", "running"):
            return state  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"upload {upload_id} did not finish: {state}")


def test_f21_rejected_uploads_and_skipped_files_leave_nothing_behind(
    settings: Settings, client: TestClient
) -> None:
    """F21: a rejected upload (duplicate names, not a photo) left `<data>/uploads/<uuid>/`, with the
    files saved so far; an accepted non-image stayed on disk for ever. Now a rejected upload is
    removed and files the ingest did not store are deleted when it finishes."""
    photo = ("files", ("IMG_2257.JPG", (FEEDER / "IMG_2257.JPG").read_bytes(), "image/jpeg"))
    dup = client.post("/api/uploads", files=[photo, photo], headers=AUTH)
    bad = client.post(
        "/api/uploads", files=[photo, ("files", ("evil.html", b"<html>", "text/html"))], headers=AUTH
    )
    assert dup.status_code == bad.status_code == 422
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []

    junk = ("files", ("notaphoto.jpg", b"\xff" * 4096, "image/jpeg"))
    started = client.post("/api/uploads", files=[photo, junk], headers=AUTH)
    assert started.status_code == 202
    state = _wait(client, started.json()["id"])
    assert state["status"] == "done", state
    kept = sorted(p.name for p in (uploads / state["id"] / "photos").iterdir())
    assert kept == ["IMG_2257.JPG"]


def test_f22_an_interrupted_upload_resumes_and_timestamps_have_one_format(
    settings: Settings, deerid: Deerid, client: TestClient
) -> None:
    """F22: a server killed mid-upload left the upload `interrupted` with photos only on disk and
    no way to finish it; POST and GET wrote timestamps in two formats. Now POST
    /api/uploads/{id}/resume ingests what is missing, and every timestamp is ISO 8601 UTC."""
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
    started = client.post(
        "/api/uploads",
        files=[("files", ("IMG_2263.JPG", (FEEDER / "IMG_2263.JPG").read_bytes(), "image/jpeg"))],
        headers=AUTH,
    )
    first = _wait(client, started.json()["id"])
    assert iso.match(started.json()["created_at"]) and iso.match(first["created_at"])
    assert iso.match(first["started_at"]) and iso.match(first["finished_at"])

    # What a server SIGKILLed at photo 1 of 2 leaves: the files, and a "running" status of a dead pid.
    upload_id = str(uuid.uuid4())
    folder = settings.data_dir / "uploads" / upload_id
    (folder / "photos").mkdir(parents=True)
    for name in TWO:
        shutil.copy2(FEEDER / name, folder / "photos" / name)
    _detections(folder, TWO, "detections.json")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "status.json").write_text(
        json.dumps(
            {"id": upload_id, "status": "running", "pid": dead.pid, "photos_total": 2, "photos_done": 1}
        )
    )
    assert client.get(f"/api/uploads/{upload_id}").json()["status"] == "interrupted"
    assert client.post(f"/api/uploads/{upload_id}/resume").status_code == 401
    resumed = client.post(f"/api/uploads/{upload_id}/resume", headers=AUTH)
    assert resumed.status_code == 202, resumed.text
    state = _wait(client, upload_id)
    assert state["status"] == "done" and state["report"]["photos_new"] == 2, state
    assert state["report"]["reidentified"] == 2
    assert client.post(f"/api/uploads/{upload_id}/resume", headers=AUTH).status_code == 409
    with deerid.sessions() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Image)).scalar_one() == 3


def test_detection_store_inserts_in_chunks(world) -> None:  # type: ignore[no-untyped-def]
    """F5 at the store level: add_detections with 6,000 rows (78,000 parameters) for one image."""
    image_id = world.photo()
    rows = [
        det_store.NewDetection(
            i, (0.1, 0.1, 0.2, 0.2), 0.9, "person", None, None, None, DetectionStatus.NOT_DEER
        )
        for i in range(6000)
    ]
    with world.factory() as s, s.begin():
        assert len(det_store.add_detections(s, image_id, rows)) == 6000
    with world.factory() as s, s.begin():
        assert det_store.add_detections(s, image_id, rows) == []
