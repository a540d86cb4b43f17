"""Exports on a real ingest of real feeder photos in a real PostgreSQL: the Camtrap DP package
(validated by frictionless against the table schemas deerid ships, written from the standard's
field list) and the CSV of sightings (read back and compared with the database), through the CLI
in process and through the API's streamed downloads.

The photos: buck-A five times on the Victure camera, buck-B twice and a person on the EDGE
camera (EXIF "MOULTRIE EDGE"), a doe group in two photos of one event (IMG_4222/4223, 336 s
apart; the gap is 400 s), six turkeys on GG (also "MOULTRIE EDGE"). No threshold: every new track
founds a deer; a person then moves buck-A's five sightings into one deer (human-confirmed).
The ingested database is made once and cloned for each test.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tracemalloc
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from frictionless import Package

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.session import create_database
from deerid.db.tables import Camera, Deer, Detection, Image
from deerid.export.camtrap import local_descriptor, write_package
from deerid.export.common import ExportOptions, parse_timezone, stream_zip
from deerid.pipeline.ingest import ingest
from deerid.store.curation import move_detections
from support.cards import feeder_card
from support.cli import invoke_once
from support.server import start_server

PHOTOS = [
    "IMG_2257.JPG",  # buck-A (Victure)
    "IMG_2263.JPG",
    "IMG_2333.JPG",
    "IMG_2336.JPG",
    "IMG_2354.JPG",
    "IMG_3899.JPG",  # buck-B (EDGE)
    "IMG_3901.JPG",
    "IMG_4204.JPG",  # a person (EDGE)
    "IMG_4222.JPG",  # does, one event of two photos (EDGE)
    "IMG_4223.JPG",
    "IMG_7336.JPG",  # six wild turkeys (EDGE's sibling GG, same EXIF model)
]
BUCK_A = ["IMG_2257.JPG", "IMG_2263.JPG", "IMG_2333.JPG", "IMG_2336.JPG", "IMG_2354.JPG"]
TOKEN = "export-token"
TABLES = ("deployments", "media", "observations", "individuals")


@pytest.fixture(scope="module")
def ingested(pg_root: str, tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> str:
    """Name of a database holding the ingest (a template for each test's copy)."""
    root = tmp_path_factory.mktemp("export-card")
    card, md = feeder_card(root, PHOTOS)
    name = f"export_{uuid.uuid4().hex[:10]}"
    data_dir = root / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(
        database_url=create_database(pg_root, name),
        data_dir=data_dir,
        device="cpu",
        broker_url=None,
        encounter_gap=400.0,
    )
    with Deerid(settings) as deerid:  # closed: a template may have no open connections
        ingest(deerid, card, md)
        with deerid.sessions() as s, s.begin():
            ids = s.execute(
                sa.select(Detection.id)
                .join(Image, Image.id == Detection.image_id)
                .where(Detection.sex.is_not(None), sa.or_(*[Image.path.like(f"%/{f}") for f in BUCK_A]))
            ).scalars()
            move_detections(s, list(ids))  # a person's statement: these five are one deer
    return name


@pytest.fixture
def db(ingested: str, pg_root: str, tmp_path: Path, models_dir: Path) -> Iterator[Settings]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    url = create_database(pg_root, f"t_{uuid.uuid4().hex[:12]}", template=ingested)
    yield Settings(
        database_url=url,
        data_dir=data_dir,
        device="cpu",
        broker_url=None,
        api_token=TOKEN,
        encounter_gap=400.0,
    )


@pytest.fixture
def db_deerid(db: Settings) -> Iterator[Deerid]:
    """The runtime context on the test's copy of the ingested database."""
    with Deerid(db) as context:
        yield context


def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    ran = invoke_once(settings, *args)
    return ran.returncode, ran.stdout, ran.stderr


def _place_cameras(deerid: Deerid) -> None:
    with deerid.sessions() as s, s.begin():
        for n, camera in enumerate(s.execute(sa.select(Camera).order_by(Camera.id)).scalars()):
            camera.latitude, camera.longitude = 44.5 + n / 100, -89.5 - n / 100


def _validate(package_dir: Path) -> list[tuple[str, str, str]]:
    """frictionless errors as (table, error type, field), against deerid's schema files."""
    report = Package(local_descriptor(package_dir), basepath=str(package_dir)).validate()
    return [(task.name, e.type, getattr(e, "field_name", "")) for task in report.tasks for e in task.errors]


def _table(package_dir: Path, name: str) -> list[dict[str, str]]:
    with (package_dir / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _boxes(deerid: Deerid) -> list[sa.Row]:  # type: ignore[type-arg]
    with deerid.sessions() as s:
        return list(
            s.execute(
                sa.select(
                    Detection.id,
                    Detection.image_id,
                    Image.path,
                    Image.event_id,
                    Detection.sex,
                    Detection.deer_id,
                    Deer.name,
                    Detection.bbox_w * Detection.bbox_h,
                    Detection.confirmed_at,
                    Detection.assignment,
                    Detection.model_id,
                    Detection.similarity,
                    Detection.status,
                    Detection.class_label,
                    Detection.category,
                )
                .join(Image, Image.id == Detection.image_id)
                .outerjoin(Deer, Deer.id == Detection.deer_id)
            ).all()
        )


def test_package_validates_and_says_what_the_database_holds(
    db: Settings, db_deerid: Deerid, tmp_path: Path
) -> None:
    """CLI `export camtrap-dp` with coordinates set and a timezone: frictionless finds no error
    (types, required fields, enums, ranges, unique keys, foreign keys media→deployments and
    observations→media/deployments); one deployment per camera spanning its photos; a media row
    per photo with `favorite` exactly on each deer's largest-box photo; an observation per box and
    per animal of each event, with individualID, human for the person-confirmed buck-A, machine
    with the model id otherwise; every individualID is in individuals.csv."""
    _place_cameras(db_deerid)
    out = tmp_path / "package"
    code, stdout, stderr = _cli(db, "export", "camtrap-dp", str(out), "--timezone", "America/Chicago")
    assert code == 0, stdout + stderr
    # GG's turkeys share EXIF "MOULTRIE EDGE" with the EDGE camera: one camera, one deployment here.
    assert "wrote 2 deployments, 11 photos" in stdout and "warning" not in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["datapackage.json", *(f"{t}.csv" for t in TABLES)]
    )
    assert _validate(out) == []
    meta = json.loads((out / "datapackage.json").read_text())
    assert (
        meta["profile"] == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    )
    assert [r["schema"] for r in meta["resources"][:3]] == [
        f"https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/{t}-table-schema.json" for t in TABLES[:3]
    ]
    assert meta["temporal"] == {"start": "2021-10-22", "end": "2024-12-06"}  # buck-A first, turkeys last
    assert meta["spatial"]["type"] == "Polygon" and meta["project"]["individualAnimals"] is True

    deployments = _table(out, "deployments")
    with db_deerid.sessions() as s:
        cameras = dict(s.execute(sa.select(Camera.name, Camera.id)).all())
    assert {d["cameraID"]: d["deploymentID"] for d in deployments} == {
        name: f"camera-{camera_id}" for name, camera_id in cameras.items()
    }
    assert all(d["latitude"] and d["longitude"] for d in deployments)
    assert all(d["timestampIssues"] == "false" for d in deployments)
    victure = next(d for d in deployments if d["cameraID"] == "VICTURE HC300")
    assert victure["deploymentStart"].startswith("2021-10-22T") and victure["deploymentStart"].endswith(
        "-05:00"
    )
    assert victure["deploymentEnd"].startswith("2021-11-01T") and victure["deploymentEnd"].endswith("-05:00")

    boxes = _boxes(db_deerid)
    media = _table(out, "media")
    assert len(media) == len(PHOTOS)
    best: dict[object, tuple[float, int, int]] = {}
    for b in boxes:
        if b.deer_id is not None:
            key = (-b[7], b.id, b.image_id)
            best[b.deer_id] = min(best.get(b.deer_id, key), key)
    assert {m["mediaID"] for m in media if m["favorite"] == "true"} == {str(v[2]) for v in best.values()}

    observations = _table(out, "observations")
    by_box = {o["observationID"]: o for o in observations if o["observationLevel"] == "media"}
    assert len(by_box) == len(boxes)
    for b in boxes:
        row = by_box[f"box-{b.id}"]
        assert row["mediaID"] == str(b.image_id) and row["eventID"] == str(b.event_id)
        assert row["individualID"] == (str(b.deer_id) if b.deer_id else "")
        if b.deer_id is not None and b.confirmed_at is not None:
            assert (row["classificationMethod"], row["classifiedBy"]) == ("human", "")
        elif b.deer_id is not None:
            assert (row["classificationMethod"], row["classifiedBy"]) == ("machine", b.model_id)
    buck_a = {str(b.deer_id) for b in boxes if Path(b.path).name in BUCK_A and b.sex is not None}
    assert len(buck_a) == 1
    assert {o["classificationMethod"] for o in observations if o["individualID"] in buck_a} == {"human"}
    assert {
        o["classificationMethod"]
        for o in observations
        if o["individualID"] and o["individualID"] not in buck_a
    } == {"machine"}

    # Event rows: one per deer (or unidentified track) per event, one per kind of other animal.
    events = [o for o in observations if o["observationLevel"] == "event"]
    expected: dict[str, set[str]] = defaultdict(set)
    for b in boxes:
        if b.deer_id is not None:
            expected[str(b.event_id)].add(str(b.deer_id))
    for event_id, deer in expected.items():
        assert {o["individualID"] for o in events if o["eventID"] == event_id and o["individualID"]} == deer
    turkeys = [o for o in events if "class:wild_turkey" in o["observationTags"]]
    assert [(o["observationType"], o["count"], o["scientificName"]) for o in turkeys] == [("animal", "6", "")]
    person = [o for o in events if o["observationType"] == "human"]
    assert [(o["count"], o["scientificName"]) for o in person] == [("1", "Homo sapiens")]
    assert all(o["eventStart"] <= o["eventEnd"] for o in observations)

    individuals = _table(out, "individuals")
    assert {o["individualID"] for o in observations if o["individualID"]} == {
        i["individualID"] for i in individuals
    }
    assert {i["individualID"] for i in individuals} == {str(b.deer_id) for b in boxes if b.deer_id}


def test_probability_comes_from_the_calibration_and_never_for_a_founding_sighting(
    db: Settings, db_deerid: Deerid, tmp_path: Path
) -> None:
    """Through the Python API with a stand-in calibration: machine observations of a deer that
    joined by its track carry the calibrated probability of their similarity; a founding sighting
    (assignment new: its similarity is to another deer) and a human one carry none."""
    _place_cameras(db_deerid)
    options = ExportOptions(timezone=parse_timezone("UTC"), probability=lambda m, s: round((s + 1) / 2, 6))
    with db_deerid.sessions() as s, s.begin():
        write_package(s, tmp_path / "p", options)
    assert _validate(tmp_path / "p") == []
    rows = {o["observationID"]: o for o in _table(tmp_path / "p", "observations")}
    seen = set()
    for b in _boxes(db_deerid):
        row = rows[f"box-{b.id}"]
        if b.deer_id is None:
            continue
        if b.confirmed_at is not None or b.assignment.value in ("new", "manual") or b.similarity is None:
            assert row["classificationProbability"] == ""
        else:
            assert math.isclose(float(row["classificationProbability"]), (b.similarity + 1) / 2, abs_tol=2e-6)
        seen.add(b.assignment.value)
    assert {"new", "manual"} <= seen


def test_missing_coordinates_are_named_and_fail_the_standard(db: Settings, tmp_path: Path) -> None:
    """Cameras without coordinates: the export still writes the package but warns, naming the
    cameras; validation fails on exactly the required latitude/longitude of those deployments
    (the shipped schema enforces them); without --timezone times are UTC with timestampIssues."""
    out = tmp_path / "package"
    code, stdout, stderr = _cli(db, "export", "camtrap-dp", str(out))
    assert code == 0, stdout + stderr
    assert "no coordinates for" in stderr and "VICTURE HC300" in stderr and "timestampIssues" in stderr
    errors = _validate(out)
    assert errors and {(t, f) for t, _, f in errors} == {
        ("deployments", "latitude"),
        ("deployments", "longitude"),
    }
    assert len(errors) == 2 * 2  # two deployments (cameras), each without both
    deployments = _table(out, "deployments")
    assert all(
        d["timestampIssues"] == "true" and d["deploymentStart"].endswith("+00:00") for d in deployments
    )


def test_empty_database_gives_a_valid_empty_package(settings: Settings, tmp_path: Path) -> None:
    """Nothing ingested: every table is its header only, and the package validates."""
    out = tmp_path / "empty"
    code, stdout, stderr = _cli(settings, "export", "camtrap-dp", str(out), "--json")
    assert code == 0, stdout + stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("deployments", "media", "observations", "individuals")} == dict.fromkeys(
        ("deployments", "media", "observations", "individuals"), 0
    )
    assert _validate(out) == []
    for table in TABLES:
        text = (out / f"{table}.csv").read_text()
        assert text.count("\n") == 1 and _table(out, table) == []
    code, stdout, _ = _cli(settings, "export", "csv", str(tmp_path / "s.csv"))
    assert code == 0 and "wrote 0 sightings" in stdout
    assert (tmp_path / "s.csv").read_text().count("\n") == 1


def test_existing_targets_are_refused_without_force(db: Settings, db_deerid: Deerid, tmp_path: Path) -> None:
    """A folder holding a file is refused (exit 2, one error line, nothing written, the file
    untouched); --force writes the package there. An existing CSV file likewise."""
    _place_cameras(db_deerid)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, stdout, stderr = _cli(db, "export", "camtrap-dp", str(out))
    assert code == 2 and "is not empty" in stderr and "--force" in stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    code, stdout, stderr = _cli(db, "export", "camtrap-dp", str(out), "--force")
    assert code == 0, stdout + stderr
    assert (out / "notes.txt").read_text() == "mine" and _validate(out) == []

    target = tmp_path / "s.csv"
    target.write_text("old")
    code, _, stderr = _cli(db, "export", "csv", str(target))
    assert code == 2 and "exists" in stderr and target.read_text() == "old"
    assert _cli(db, "export", "csv", str(target), "--force")[0] == 0
    assert target.read_text().startswith("detection_id,")
    code, _, stderr = _cli(db, "export", "camtrap-dp", str(tmp_path / "p2"), "--timezone", "Mars/Olympus")
    assert code == 2 and "unknown timezone" in stderr and not (tmp_path / "p2").exists()


def _check_csv_against_database(rows: list[dict[str, str]], deerid: Deerid) -> None:
    deer_boxes = [b for b in _boxes(deerid) if b.sex is not None]
    assert len(rows) == len(deer_boxes) > 0
    by_id = {int(r["detection_id"]): r for r in rows}
    for b in deer_boxes:
        r = by_id[b.id]
        assert r["photo_path"] == b.path and int(r["image_id"]) == b.image_id
        assert r["deer_id"] == (str(b.deer_id) if b.deer_id else "") and r["deer_name"] == (b.name or "")
        assert (
            r["sex"] == b.sex.value and r["status"] == b.status.value and r["class"] == (b.class_label or "")
        )
        assert r["assignment"] == (b.assignment.value if b.assignment else "")
        assert r["confirmed"] == ("true" if b.confirmed_at else "false")
        assert (r["similarity"] == "") == (b.similarity is None)
        if b.similarity is not None:
            assert math.isclose(float(r["similarity"]), b.similarity, abs_tol=1e-6)
        assert r["deployment_id"].startswith("camera-") and r["time_source"]
        assert math.isclose(float(r["box_width"]) * float(r["box_height"]), b[7], rel_tol=1e-4)


def test_csv_round_trip(db: Settings, db_deerid: Deerid, tmp_path: Path) -> None:
    """CLI `export csv`: read back, one row per deer box (no turkey, no person), each the same as
    the database (photo, deer id and name, sex, class, status, assignment, confirmed,
    similarity, box)."""
    out = tmp_path / "sightings.csv"
    code, stdout, stderr = _cli(db, "export", "csv", str(out), "--timezone", "Europe/Berlin")
    assert code == 0, stdout + stderr
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert f"wrote {len(rows)} sightings" in stdout
    _check_csv_against_database(rows, db_deerid)
    assert sum(r["confirmed"] == "true" for r in rows) == 5
    assert all(r["time"][-6:] in ("+01:00", "+02:00") for r in rows)


def test_api_streams_the_csv_and_a_valid_zip(db: Settings, db_deerid: Deerid, tmp_path: Path) -> None:
    """GET /api/export/csv and /api/export/camtrap-dp: attachments that read back as the CSV the
    database gives and a zip whose package validates; from another machine without the token
    401; an unknown timezone 422."""
    _place_cameras(db_deerid)
    with TestClient(create_app(db), base_url="http://localhost") as client:
        response = client.get("/api/export/csv")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        _check_csv_against_database(list(csv.DictReader(io.StringIO(response.text))), db_deerid)

        response = client.get("/api/export/camtrap-dp", params={"timezone": "America/Chicago"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert sorted(archive.namelist()) == sorted(["datapackage.json", *(f"{t}.csv" for t in TABLES)])
            archive.extractall(tmp_path / "unzipped")
        assert _validate(tmp_path / "unzipped") == []
        assert len(_table(tmp_path / "unzipped", "media")) == len(PHOTOS)

        assert client.get("/api/export/csv", params={"timezone": "Nowhere/Else"}).status_code == 422
    with TestClient(create_app(db), base_url="http://deer.example.org") as remote:
        assert remote.get("/api/export/camtrap-dp").status_code == 401
        ok = remote.get("/api/export/csv", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


def test_zip_is_written_while_it_streams() -> None:
    """stream_zip over 300,000 rows (about 12 MB of CSV): no chunk it yields is more than a
    small fraction of the whole and Python's allocations peak far below the text's size, and
    the zip reads back to the exact text."""

    def rows() -> Iterator[str]:
        yield "a,b,c\n"
        for i in range(300_000):
            yield f"{i},{i * 7 % 1000},some text for row {i}\n"

    total = sum(len(r) for r in rows())
    tracemalloc.start()
    try:
        chunks = []
        biggest = 0
        for chunk in stream_zip([("t.csv", rows())]):
            biggest = max(biggest, len(chunk))
            chunks.append(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data = b"".join(chunks)
    assert len(chunks) > 10 and biggest < total / 20
    # The chunks kept by this test are the compressed zip (a few MB); streaming itself adds little.
    assert peak < len(data) + total / 4
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("t.csv").decode() == "".join(rows())


def test_a_large_database_streams_in_bounded_memory(deerid: Deerid) -> None:
    """30,000 sightings made in SQL (10,000 photos, three deer boxes each, 50 deer): the CSV
    export is read through a server-side cursor, so Python's allocations peak under 15 MB (about
    7 MB measured; the whole result fetched at once peaks at 46 MB) while it writes 7 MB; every
    row comes out once."""
    with deerid.sessions() as s, s.begin():
        s.execute(sa.text("INSERT INTO cameras (name) VALUES ('bulk cam')"))
        s.execute(
            sa.text(
                "INSERT INTO deer (id, name, sex, sighting_count) SELECT gen_random_uuid(), 'Deer ' || g, "
                "'buck', 0 FROM generate_series(1, 50) g"
            )
        )
        s.execute(
            sa.text(
                "INSERT INTO images (path, sha256, camera_id, captured_at, captured_at_source, width, height,"
                " file_size) SELECT '/card/IMG_' || g || '.JPG', lpad(to_hex(g), 64, '0'),"
                " (SELECT id FROM cameras), timestamp '2024-01-01' + g * interval '1 minute',"
                " 'exif_datetime_original', 1920, 1080, 1 FROM generate_series(1, 10000) g"
            )
        )
        s.execute(
            sa.text(
                "INSERT INTO detections (image_id, source_index, bbox_x, bbox_y, bbox_w, bbox_h,"
                " detector_conf, category, class_label, sex, status, deer_id, similarity, model_id,"
                " assignment)"
                " SELECT i.id, k, 0.1 * k, 0.2, 0.1, 0.2, 0.9, 'animal', 'mid', 'buck', 'assigned',"
                " (array_agg_deer.ids)[1 + (i.id * 3 + k) % 50], 0.8, 'm', 'matched'"
                " FROM images i CROSS JOIN generate_series(0, 2) k"
                " CROSS JOIN (SELECT array_agg(id ORDER BY name) AS ids FROM deer) array_agg_deer"
            )
        )
    from deerid.export.csv import sightings_csv

    rows = 0
    written = 0
    with deerid.sessions() as s, s.begin():  # imports and query compilation, not measured
        next(iter(sightings_csv(s, ExportOptions())))
    tracemalloc.start()
    try:
        with deerid.sessions() as s, s.begin():
            for chunk in sightings_csv(s, ExportOptions()):
                rows += chunk.count("\n")
                written += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == 30_000 + 1 and written > 6_000_000
    assert peak < 15_000_000, f"peak {peak / 1e6:.1f} MB for {written / 1e6:.1f} MB written"


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_dashboard_downloads_both_exports(db: Settings, db_deerid: Deerid, tmp_path: Path) -> None:
    """The Cameras page in Chromium against a real uvicorn server: its two export buttons
    download the CSV (the database's rows) and the Camtrap DP zip (a valid package), with the
    timezone typed on the page."""

    from playwright.sync_api import sync_playwright

    _place_cameras(db_deerid)
    base_url, stop = start_server(create_app(db))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(base_url=base_url, accept_downloads=True)
            page = context.new_page()
            page.goto("/cameras")
            page.fill("#export-timezone", "America/Chicago")
            with page.expect_download() as csv_download:
                page.click("#export-csv")
            csv_path = tmp_path / "dl.csv"
            csv_download.value.save_as(csv_path)
            with page.expect_download() as zip_download:
                page.click("#export-camtrap")
            zip_path = tmp_path / "dl.zip"
            zip_download.value.save_as(zip_path)
            browser.close()
    finally:
        stop()
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    _check_csv_against_database(rows, db_deerid)
    assert all(r["time"].endswith(("-05:00", "-06:00")) for r in rows)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "dl")
    assert _validate(tmp_path / "dl") == []


def test_a_photo_without_capture_time_is_left_out_and_counted(
    db: Settings, db_deerid: Deerid, tmp_path: Path
) -> None:
    """A photo whose capture time is unknown (set to NULL here) cannot be a Camtrap DP media row
    (timestamp is required): it and its boxes are left out, the warning counts it, and the
    package still validates; the CSV keeps its sighting with an empty time."""
    _place_cameras(db_deerid)
    with db_deerid.sessions() as s, s.begin():
        image_id = s.execute(sa.select(Image.id).where(Image.path.like("%/IMG_2333.JPG"))).scalar_one()
        s.execute(sa.update(Image).where(Image.id == image_id).values(captured_at=None))
    out = tmp_path / "p"
    code, stdout, stderr = _cli(db, "export", "camtrap-dp", str(out), "--timezone", "UTC")
    assert code == 0 and "1 photos have no capture time" in " ".join(stderr.split()), stdout + stderr
    assert _validate(out) == []
    media = _table(out, "media")
    assert len(media) == len(PHOTOS) - 1 and str(image_id) not in {m["mediaID"] for m in media}
    assert str(image_id) not in {o["mediaID"] for o in _table(out, "observations")}
    code, _, _ = _cli(db, "export", "csv", str(tmp_path / "s.csv"))
    with (tmp_path / "s.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["image_id"] == str(image_id)]
    assert code == 0 and len(rows) == 1 and rows[0]["time"] == "" and rows[0]["captured_at"] == ""
