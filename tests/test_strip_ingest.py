"""Info strips in `deerid ingest` (docs/strip.md), on real feeder photos and a real PostgreSQL.

- `--camera-from-strip` through the CLI (in process) on all 47 photos: the three Moultrie cameras that
  share EXIF "MOULTRIE EDGE" come apart as EDGE, Olpe and GG, IMG_0988 is the Simmons camera and takes
  its strip time, and the Victure photos (no name on their strip) keep their EXIF camera.
- Without the option only a sample is read, plus every photo without an EXIF time: a copy whose EXIF
  was stripped takes the strip time (source "strip"); one whose strip was also cut off falls back to
  the file time and the summary says so.
- A copy whose EXIF time was moved an hour is flagged in the summary and in the API.
- With `tesseract` missing, a plain ingest warns and falls back; `--camera-from-strip` is one clear error.

Altered photos are copies in the test's temp dir; ../shared is only read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Camera, Event, Image
from deerid.ingest.photos import read_photo_meta
from deerid.pipeline.ingest import ingest
from support.cli import invoke
from support.db import create_database
from support.paths import FEEDER, FEEDER_JSON

GROUND_TRUTH = {im["file"]: im for im in json.loads(FEEDER_JSON.read_text())["images"]}
TOKEN = "strip-token"


def run_cli(deerid: Deerid, *args: str, **env: str) -> tuple[int, str]:
    """`deerid ARGS` in this process on `deerid`'s database and data dir: (exit code, output)."""
    ran = invoke(deerid, *args, env=env or None)
    return ran.returncode, ran.output


def photos_by_name(deerid: Deerid) -> dict[str, tuple[Image, str | None]]:
    with deerid.sessions() as s:
        rows = s.execute(sa.select(Image, Camera.name).outerjoin(Camera, Camera.id == Image.camera_id)).all()
        s.expunge_all()
    return {Path(img.path).name: (img, cam) for img, cam in rows}


@pytest.fixture(scope="module")
def from_strip(
    pg_root: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deerid, dict[str, Any]]]:
    """All 47 feeder photos ingested once with `--camera-from-strip --no-reid --json` (OCR of every photo,
    ~25 s): (its context, the JSON summary)."""
    data_dir = tmp_path_factory.mktemp("strip-data")
    settings = Settings(database_url=create_database(pg_root), data_dir=data_dir, device="cpu")
    with Deerid(settings) as deerid:
        ran = invoke(deerid, "ingest", str(FEEDER), "--camera-from-strip", "--no-reid", "--json")
        assert ran.returncode == 0, ran.output
        yield deerid, json.loads(ran.stdout.strip().splitlines()[-1])


def test_camera_from_strip_tells_the_moultrie_cameras_apart(
    from_strip: tuple[Deerid, dict[str, Any]],
) -> None:
    """The cameras found are EDGE, Olpe, GG (all EXIF "MOULTRIE EDGE"), the Simmons camera and the Victure
    (EXIF name: its strip has none); at least 90 % of the Moultrie photos land on the camera their strip
    names in the ground truth."""
    deerid, summary = from_strip
    photos = photos_by_name(deerid)
    cameras = Counter(cam for _, cam in photos.values())
    for name in ("EDGE", "Olpe", "GG", "VICTURE HC300"):
        assert cameras[name] >= 4, cameras
    simmons = photos["IMG_0988.JPG"][1]
    assert simmons is not None and simmons.startswith("SIMMONS"), simmons
    assert cameras["VICTURE HC300"] == 7
    moultrie = [f for f, im in GROUND_TRUTH.items() if im["camera"] == "MOULTRIE EDGE"]
    right = [f for f in moultrie if photos[f][1] == GROUND_TRUTH[f]["strip_camera_name"]]
    assert len(right) >= 0.9 * len(moultrie), {f: photos[f][1] for f in moultrie if f not in right}
    assert {c["name"] for c in summary["cameras"]} == set(cameras)


def test_camera_from_strip_summary_and_stored_strip(from_strip: tuple[Deerid, dict[str, Any]]) -> None:
    """Every strip is read and stored (time, camera, temperature, status); EXIF and strip agree within the
    tolerance on every photo (Moultrie to the minute, Victure within 1 s), so nothing is flagged; IMG_0988
    takes its strip time 2020-10-18 11:08:54 with source "strip"; the summary prints the strip line."""
    deerid, summary = from_strip
    assert summary["strips_read"] + summary["strips_unreadable"] == 47
    assert summary["strips_read"] >= 43
    assert summary["strip_disagreements"] == []
    assert summary["time_from_strip"] == 1 and summary["time_fallbacks"] == []
    assert summary["strip_seconds"] > 0
    photos = photos_by_name(deerid)
    simmons, _ = photos["IMG_0988.JPG"]
    assert simmons.captured_at == datetime(2020, 10, 18, 11, 8, 54)
    assert simmons.captured_at_source == "strip" and simmons.strip_status == "read"
    assert simmons.strip_offset_s is None and simmons.strip_disagrees is None  # nothing to compare with
    edge, _ = photos["IMG_3736.JPG"]
    assert edge.captured_at_source == "exif_datetime_original"
    assert edge.strip_time == datetime(2022, 10, 7, 20, 21) and edge.strip_camera == "EDGE"
    assert edge.strip_temperature_f == 44 and edge.strip_offset_s == 0.0 and edge.strip_disagrees is False
    victure, _ = photos["IMG_2257.JPG"]
    assert victure.strip_offset_s == -1.0 and victure.strip_disagrees is False  # strip 1 s later than EXIF


def copy_without_exif(source: Path, target: Path, *, crop_strip: bool = False) -> Path:
    """A re-encoded copy with no EXIF at all, optionally with the bottom 10 % (the strip) cut off."""
    with PILImage.open(source) as image:
        pixels = image.convert("RGB")
        if crop_strip:
            pixels = pixels.crop((0, 0, pixels.width, int(pixels.height * 0.9)))
        pixels.save(target, quality=95)
    return target


def copy_with_exif_shifted(source: Path, target: Path, shift: timedelta) -> Path:
    """A copy whose EXIF DateTimeOriginal (and DateTime) are moved by `shift`: a camera clock gone wrong."""
    with PILImage.open(source) as image:
        exif = image.getexif()
        ifd = exif.get_ifd(0x8769)
        moved = datetime.strptime(str(ifd[0x9003]), "%Y:%m:%d %H:%M:%S") + shift
        ifd[0x9003] = moved.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = moved.strftime("%Y:%m:%d %H:%M:%S")
        image.save(target, exif=exif, quality=95)
    return target


@pytest.fixture
def card(tmp_path: Path) -> Path:
    """A card of one camera folder: four untouched Moultrie "GG" photos, a GG photo with its EXIF stripped,
    a GG photo with EXIF stripped and the strip cut off, and IMG_0988 (no EXIF time, as it comes)."""
    root = tmp_path / "card" / "DCIM"
    root.mkdir(parents=True)
    for name in ("IMG_7324.JPG", "IMG_7325.JPG", "IMG_7326.JPG", "IMG_7327.JPG", "IMG_0988.JPG"):
        shutil.copy2(FEEDER / name, root / name)
    copy_without_exif(FEEDER / "IMG_7331.JPG", root / "NOEXIF_7331.JPG")
    copy_without_exif(FEEDER / "IMG_7332.JPG", root / "NOSTRIP_7332.JPG", crop_strip=True)
    return root.parent


def test_strip_time_used_when_exif_has_none_and_fallback_said(
    settings: Settings, deerid: Deerid, card: Path
) -> None:
    """Plain ingest (no --camera-from-strip), one photo sampled per camera and folder: the EXIF-less copy
    of IMG_7331 gets its strip time (2024-11-08 08:10, source "strip"); IMG_0988 gets 2020-10-18 11:08:54;
    the copy without EXIF and strip falls back to the file time and the summary says which and why;
    of the four GG photos with EXIF only one strip is read (the sample), so OCR stays off the hot path."""
    sampled = settings.model_copy(update={"strip_sample": 1})
    with Deerid(sampled) as other:
        report = ingest(other, card, reidentify=False)
    photos = photos_by_name(deerid)
    noexif, _ = photos["NOEXIF_7331.JPG"]
    assert read_photo_meta(card / "DCIM" / "NOEXIF_7331.JPG").captured_at_source == "file_mtime"
    assert noexif.captured_at_source == "strip" and noexif.captured_at == datetime(2024, 11, 8, 8, 10)
    simmons, _ = photos["IMG_0988.JPG"]
    assert simmons.captured_at_source == "strip" and simmons.captured_at == datetime(2020, 10, 18, 11, 8, 54)
    nostrip, _ = photos["NOSTRIP_7332.JPG"]
    assert nostrip.captured_at_source == "file_mtime" and nostrip.strip_status in ("no_strip", "no_time")
    assert nostrip.captured_at == datetime.fromtimestamp((card / "DCIM" / "NOSTRIP_7332.JPG").stat().st_mtime)
    with deerid.sessions() as s:
        reason = s.execute(sa.select(Event.reason).where(Event.id == nostrip.event_id)).scalar_one()
    assert reason is not None and "file's modification time" in reason  # an event of its own, saying why
    assert [f["file"] for f in report.time_fallbacks] == ["DCIM/NOSTRIP_7332.JPG"]
    assert (
        report.time_fallbacks[0]["source"] == "file_mtime" and "strip" in report.time_fallbacks[0]["reason"]
    )
    assert report.time_from_strip == 2
    with_exif = [photos[f"IMG_{n}.JPG"][0] for n in (7324, 7325, 7326, 7327)]
    assert sum(img.strip_status is not None for img in with_exif) == 1
    assert report.strips_read + report.strips_unreadable == 4  # 1 sampled + 3 without EXIF time


def test_exif_strip_disagreement_flagged_in_summary_and_api(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """A copy of IMG_7335 whose EXIF time was moved +1 h is read (the sample), disagrees with its strip by
    3600 s, is listed in the summary (and the CLI's text summary), and carries `time_disagreement` in the
    API's event photos and deer sightings; the untouched IMG_7333 of the same camera agrees and is not."""
    card = tmp_path / "card"
    card.mkdir()
    copy_with_exif_shifted(FEEDER / "IMG_7335.JPG", card / "IMG_7335.JPG", timedelta(hours=1))
    shutil.copy2(FEEDER / "IMG_7333.JPG", card / "IMG_7333.JPG")
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in ("IMG_7335.JPG", "IMG_7333.JPG")]
    md = tmp_path / "md.json"
    md.write_text(json.dumps(data))
    configured = settings.model_copy(update={"api_token": TOKEN})
    with Deerid(configured) as other:
        report = ingest(other, card, md)
    assert [d["file"] for d in report.strip_disagreements] == ["IMG_7335.JPG"]
    assert report.strip_disagreements[0]["offset_s"] == 3600.0
    code, out = run_cli(deerid, "ingest", str(card), "--detections", str(md), "--no-reid")
    assert code == 0, out  # the photos are stored already; the strips are read and compared again
    assert "EXIF and strip disagree (1):" in out and "IMG_7335.JPG" in out and "+3600 s" in out
    photos = photos_by_name(deerid)
    assert photos["IMG_7335.JPG"][0].strip_disagrees is True
    assert photos["IMG_7333.JPG"][0].strip_disagrees is False
    with TestClient(create_app(configured), base_url="http://localhost") as api:
        event_id = photos["IMG_7335.JPG"][0].event_id
        body = api.get(f"/api/events/{event_id}").json()
        (photo,) = [p for p in body["photos"] if p["image_id"] == photos["IMG_7335.JPG"][0].id]
        assert photo["time_disagreement"] is True and photo["strip_offset_s"] == 3600.0
        # Only thumbnails in this card: their "Olpe" reads "Obe", and no taller strip is there to settle it.
        assert photo["strip_camera"] and photo["strip_temperature_f"] == 87
        assert photo["strip_time"] == "2023-09-28T19:24:00" and photo["strip_status"] == "read"
        deer = api.get("/api/deer").json()["items"]
        sightings = [s for d in deer for s in api.get(f"/api/deer/{d['id']}/detections").json()]
        flags = {s["image_id"]: s["time_disagreement"] for s in sightings}
        assert flags.get(photos["IMG_7335.JPG"][0].id) is True
        assert flags.get(photos["IMG_7333.JPG"][0].id) is False


@pytest.fixture
def no_tesseract(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`tesseract` looked up under a name no program has, as on a machine without the package."""
    monkeypatch.setenv("DEERID_TESSERACT", "tesseract-not-installed-here")
    yield


def test_missing_tesseract_warns_or_fails_clearly(
    settings: Settings, deerid: Deerid, tmp_path: Path, no_tesseract: None
) -> None:
    """Without `tesseract`: a plain ingest stores IMG_0988 with its file time and a warning that strips
    were not read; `--camera-from-strip` stops before storing anything, with one error line naming the
    package."""
    card = tmp_path / "card"
    card.mkdir()
    shutil.copy2(FEEDER / "IMG_0988.JPG", card / "IMG_0988.JPG")
    report = ingest(deerid, card, reidentify=False)
    assert any("tesseract is not installed" in w for w in report.warnings)
    (img, _), *_ = photos_by_name(deerid).values()
    assert img.captured_at_source == "file_mtime" and img.strip_status is None
    card2 = tmp_path / "card2"
    card2.mkdir()
    shutil.copy2(FEEDER / "IMG_7333.JPG", card2 / "IMG_7333.JPG")
    code, out = run_cli(
        deerid,
        "ingest",
        str(card2),
        "--camera-from-strip",
        "--no-reid",
        DEERID_TESSERACT=os.environ["DEERID_TESSERACT"],
    )
    assert code == 2  # deerid's exit code for an error the user can fix
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tesseract is not installed" in errors[0] and "tesseract-ocr" in errors[0], (
        out
    )
    assert "Traceback" not in out
    assert "IMG_7333.JPG" not in photos_by_name(deerid)
