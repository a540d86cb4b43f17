"""Deployments (a camera at a place between two dates, with coordinates) on a real ingest of real
feeder photos in a real PostgreSQL: CSV import through the CLI in process, the API's CRUD, which
deployment each sighting belongs to (by camera and time, the camera's clock offset applied), the
refusals (coordinates out of range, overlapping dates, unknown cameras) storing nothing, and the
exports naming the deployments.

Photos: buck-A on the Victure camera, IMG_2257 (2021-10-22 00:56:42), IMG_2263 (10-22 10:58:58),
IMG_2333 (10-29), IMG_2336 (10-30), IMG_2354 (11-01); buck-B on the EDGE camera (EXIF "MOULTRIE
EDGE"), IMG_3899/IMG_3901 (2022-11-06). The ingested database is made once and cloned per test.
"""

from __future__ import annotations

import csv
import json
import uuid
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
from deerid.db.tables import Camera, Deployment, Detection, Image
from deerid.export.camtrap import local_descriptor
from deerid.pipeline.ingest import ingest
from support.cards import feeder_card
from support.cli import invoke
from support.server import start_server

PHOTOS = [
    "IMG_2257.JPG",
    "IMG_2263.JPG",
    "IMG_2333.JPG",
    "IMG_2336.JPG",
    "IMG_2354.JPG",
    "IMG_3899.JPG",
    "IMG_3901.JPG",
]
TOKEN = "deploy-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VICTURE = "VICTURE HC300"
EDGE = "MOULTRIE EDGE"
HEADER = "camera,start,end,latitude,longitude,location,coordinate_uncertainty,notes\n"
# IMG_2257 (00:56) falls in the first Victure deployment, IMG_2263 (10:58) and later in the second.
GOOD = HEADER + (
    f"{VICTURE},2021-10-20,2021-10-22T06:00,44.51,-89.51,north feeder,30,\n"
    f"{VICTURE},2021-10-22T06:00:01,,44.52,-89.52,scrape line,,moved after the rain\n"
    f"{EDGE},2022-11-01,2022-11-30,44.6,-89.6,EDGE feeder,,\n"
)


@pytest.fixture(scope="module")
def ingested(pg_root: str, tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> str:
    root = tmp_path_factory.mktemp("deploy-card")
    card, md = feeder_card(root, PHOTOS)
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    data_dir = root / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(
        database_url=create_database(pg_root, name), data_dir=data_dir, device="cpu", broker_url=None
    )
    with Deerid(settings) as deerid:  # closed: a template may have no open connections
        ingest(deerid, card, md)
    return name


@pytest.fixture
def db(ingested: str, pg_root: str, tmp_path: Path, models_dir: Path) -> Iterator[Settings]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    url = create_database(pg_root, f"t_{uuid.uuid4().hex[:12]}", template=ingested)
    yield Settings(database_url=url, data_dir=data_dir, device="cpu", broker_url=None, api_token=TOKEN)


@pytest.fixture
def db_deerid(db: Settings) -> Iterator[Deerid]:
    """The runtime context on the test's copy of the ingested database."""
    with Deerid(db) as context:
        yield context


def _cli(deerid: Deerid, *args: str) -> tuple[int, str, str]:
    ran = invoke(deerid, *args)
    return ran.returncode, ran.stdout, ran.stderr


def _import(deerid: Deerid, tmp_path: Path, text: str) -> tuple[int, str, str]:
    path = tmp_path / f"deployments-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(text)
    return _cli(deerid, "deployments", "import", str(path))


def _stored(deerid: Deerid) -> int:
    with deerid.sessions() as s:
        return s.execute(sa.select(sa.func.count(Deployment.id))).scalar_one()


def _sighting_deployments(deerid: Deerid, tmp_path: Path) -> dict[str, str]:
    """Photo file name -> deployment_id of its sightings in the CSV export."""
    out = tmp_path / f"s-{uuid.uuid4().hex[:6]}.csv"
    assert _cli(deerid, "export", "csv", str(out))[0] == 0
    with out.open(newline="") as handle:
        return {Path(r["photo_path"]).name: r["deployment_id"] for r in csv.DictReader(handle)}


def test_imported_deployments_hold_sightings_by_camera_and_time(db_deerid: Deerid, tmp_path: Path) -> None:
    """`deployments import` of three rows: `deployments list` counts 1, 4 and 2 photos; each
    sighting's deployment in the CSV export follows its camera and time (IMG_2257 in the first
    Victure deployment, IMG_2263 and later in the second, buck-B in EDGE's); the Camtrap DP
    package validates, with the three stored deployments and their coordinates and no derived one."""
    code, stdout, stderr = _import(db_deerid, tmp_path, GOOD)
    assert code == 0, stdout + stderr
    assert "imported 3 deployments" in stdout
    code, stdout, _ = _cli(db_deerid, "deployments", "list", "--json")
    listed = json.loads(stdout)
    assert [(d["camera"], d["photos"], d["location"]) for d in listed] == [
        (EDGE, 2, "EDGE feeder"),
        (VICTURE, 1, "north feeder"),
        (VICTURE, 4, "scrape line"),
    ]
    ids = {d["location"]: f"dep-{d['id']}" for d in listed}
    where = _sighting_deployments(db_deerid, tmp_path)
    assert where == {
        "IMG_2257.JPG": ids["north feeder"],
        **dict.fromkeys(("IMG_2263.JPG", "IMG_2333.JPG", "IMG_2336.JPG", "IMG_2354.JPG"), ids["scrape line"]),
        "IMG_3899.JPG": ids["EDGE feeder"],
        "IMG_3901.JPG": ids["EDGE feeder"],
    }

    out = tmp_path / "package"
    code, stdout, stderr = _cli(db_deerid, "export", "camtrap-dp", str(out), "--timezone", "America/Chicago")
    assert code == 0 and "no coordinates" not in stderr, stdout + stderr
    report = Package(local_descriptor(out), basepath=str(out)).validate()
    assert report.valid, report.flatten(["type", "fieldName", "note"])
    with (out / "deployments.csv").open(newline="") as handle:
        deployments = {d["deploymentID"]: d for d in csv.DictReader(handle)}
    assert set(deployments) == set(ids.values())
    north = deployments[ids["north feeder"]]
    assert (north["latitude"], north["longitude"], north["coordinateUncertainty"]) == (
        "44.51",
        "-89.51",
        "30",
    )
    assert north["deploymentStart"] == "2021-10-20T00:00:00-05:00"
    assert north["deploymentEnd"] == "2021-10-22T06:00:00-05:00"
    # The open deployment ends, in the package, at its last photo so far (IMG_2354).
    assert deployments[ids["scrape line"]]["deploymentEnd"].startswith("2021-11-01T")
    with (out / "media.csv").open(newline="") as handle:
        media = {r["fileName"]: r["deploymentID"] for r in csv.DictReader(handle)}
    assert media == where


def test_clock_offset_moves_a_photo_between_deployments(db_deerid: Deerid, tmp_path: Path) -> None:
    """The Victure camera's clock offset stays on the camera: at −6 h IMG_2263 (10:58 by its clock,
    04:58 corrected) belongs to the first deployment, and the API's photo counts follow."""
    assert _import(db_deerid, tmp_path, GOOD)[0] == 0
    with TestClient(create_app(db_deerid.settings), base_url="http://localhost") as client:
        camera = next(c for c in client.get("/api/cameras").json() if c["name"] == VICTURE)
        before = {d["location"]: d["photos"] for d in client.get("/api/deployments").json()}
        assert before == {"north feeder": 1, "scrape line": 4, "EDGE feeder": 2}
        patched = client.patch(
            f"/api/cameras/{camera['id']}", json={"clock_offset_s": -6 * 3600}, headers=AUTH
        )
        assert patched.status_code == 200
        after = {d["location"]: d["photos"] for d in client.get("/api/deployments").json()}
        assert after == {"north feeder": 2, "scrape line": 3, "EDGE feeder": 2}
    where = _sighting_deployments(db_deerid, tmp_path)
    assert where["IMG_2263.JPG"] == where["IMG_2257.JPG"] != where["IMG_2333.JPG"]


def test_bad_rows_are_listed_by_line_and_nothing_is_stored(db_deerid: Deerid, tmp_path: Path) -> None:
    """A file with a latitude of 95, a longitude of −200, an unknown camera, an end before its start
    and a row overlapping another: one error naming each line and problem, exit 2, no row stored
    (not even the good first one). Then two rows that overlap each other: refused the same way."""
    bad = HEADER + (
        f"{VICTURE},2021-10-20,2021-10-21,44.5,-89.5,good,,\n"
        f"{VICTURE},2021-11-20,,95,-89.5,too far north,,\n"
        f"{EDGE},2022-11-01,,44.5,-200,too far west,,\n"
        f"nowhere cam,2022-11-01,,44.5,-89.5,,,\n"
        f"{EDGE},2022-11-30,2022-11-01,44.5,-89.5,backwards,,\n"
    )
    code, stdout, stderr = _import(db_deerid, tmp_path, bad)
    assert code == 2, stdout + stderr
    message = " ".join(stderr.split())
    assert "nothing imported" in message
    assert "line 3: latitude '95' is out of range: it must be between -90 and 90" in message
    assert "line 4: longitude '-200' is out of range" in message
    assert "line 5: no camera named 'nowhere cam'" in message
    assert "line 6: the end" in message and "is before the start" in message
    assert "line 2" not in message
    assert _stored(db_deerid) == 0

    overlapping = HEADER + (
        f"{VICTURE},2021-10-20,2021-10-25,44.5,-89.5,a,,\n{VICTURE},2021-10-25,,44.6,-89.6,b,,\n"
    )
    code, _, stderr = _import(db_deerid, tmp_path, overlapping)
    assert code == 2 and "line 3: camera 'VICTURE HC300' already has deployment" in " ".join(stderr.split())
    assert _stored(db_deerid) == 0
    code, _, stderr = _import(db_deerid, tmp_path, "camera,start\nx,2021-01-01\n")
    assert code == 2 and "header lacks latitude, longitude" in " ".join(stderr.split())


def test_api_crud_and_refusals(db: Settings, db_deerid: Deerid) -> None:
    """POST/GET/PATCH/DELETE /api/deployments: created with its photo count, changed, deleted (404
    after). Out-of-range coordinates 422 with the field named and nothing stored; an overlap 409;
    an end before the start 422; an unknown camera 404; a change without the token 401. The
    database refuses an out-of-range latitude written around the API too."""
    with TestClient(create_app(db), base_url="http://localhost") as client:
        camera = next(c for c in client.get("/api/cameras").json() if c["name"] == VICTURE)
        body = {
            "camera_id": camera["id"],
            "latitude": 44.5,
            "longitude": -89.5,
            "start_at": "2021-10-01T00:00:00",
            "end_at": "2021-10-31T00:00:00",
            "location": "feeder",
        }
        assert client.post("/api/deployments", json=body).status_code == 401
        for field, value in (
            ("latitude", 90.5),
            ("latitude", -91),
            ("longitude", 180.01),
            ("longitude", -999),
        ):
            bad = client.post("/api/deployments", json={**body, field: value}, headers=AUTH)
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == field
        assert client.get("/api/deployments").json() == []

        made = client.post("/api/deployments", json=body, headers=AUTH)
        assert made.status_code == 201
        dep = made.json()
        assert (dep["camera"], dep["photos"], dep["location"]) == (VICTURE, 4, "feeder")  # not 11-01's
        assert client.get(f"/api/deployments/{dep['id']}").json() == dep

        clash = client.post(
            "/api/deployments", json={**body, "start_at": "2021-10-30T00:00:00", "end_at": None}, headers=AUTH
        )
        assert clash.status_code == 409 and "already has deployment" in clash.json()["detail"]
        backwards = client.patch(
            f"/api/deployments/{dep['id']}", json={"end_at": "2021-09-01T00:00:00"}, headers=AUTH
        )
        assert backwards.status_code == 422 and "before the start" in backwards.json()["detail"]
        unknown = client.post("/api/deployments", json={**body, "camera_id": 99999}, headers=AUTH)
        assert unknown.status_code == 404
        aware = client.post(
            "/api/deployments", json={**body, "start_at": "2021-10-01T00:00:00Z"}, headers=AUTH
        )
        assert aware.status_code == 422

        moved = client.patch(
            f"/api/deployments/{dep['id']}", json={"latitude": 45.25, "end_at": None}, headers=AUTH
        )
        assert moved.status_code == 200
        assert (moved.json()["latitude"], moved.json()["end_at"], moved.json()["photos"]) == (45.25, None, 5)
        assert (
            client.patch(f"/api/deployments/{dep['id']}", json={"longitude": 200}, headers=AUTH).status_code
            == 422
        )
        assert client.get(f"/api/deployments/{dep['id']}").json()["longitude"] == -89.5

        assert client.delete(f"/api/deployments/{dep['id']}", headers=AUTH).status_code == 204
        assert client.get(f"/api/deployments/{dep['id']}").status_code == 404
        assert client.delete(f"/api/deployments/{dep['id']}", headers=AUTH).status_code == 404

    with db_deerid.sessions() as s:
        camera_id = s.execute(sa.select(Camera.id).where(Camera.name == VICTURE)).scalar_one()
    with pytest.raises(sa.exc.IntegrityError), db_deerid.sessions() as s, s.begin():
        s.add(Deployment(camera_id=camera_id, latitude=91.0, longitude=0.0, start_at=sa.func.now()))
    assert _stored(db_deerid) == 0


def test_photos_outside_every_deployment_keep_a_derived_one(db_deerid: Deerid, tmp_path: Path) -> None:
    """Only the EDGE camera has a stored deployment: its sightings name it, the Victure ones fall in
    a deployment derived from the camera (`camera-<id>`), which the package still lists."""
    assert _import(db_deerid, tmp_path, HEADER + f"{EDGE},2022-11-01,,44.6,-89.6,EDGE feeder,,\n")[0] == 0
    where = _sighting_deployments(db_deerid, tmp_path)
    with db_deerid.sessions() as s:
        victure_id = s.execute(sa.select(Camera.id).where(Camera.name == VICTURE)).scalar_one()
        boxes = s.execute(
            sa.select(sa.func.count(Detection.id)).join(Image).where(Detection.sex.is_not(None))
        ).scalar_one()
    assert len(where) == boxes == len(PHOTOS)
    assert {where[f] for f in PHOTOS[:5]} == {f"camera-{victure_id}"}
    assert where["IMG_3899.JPG"].startswith("dep-")
    out = tmp_path / "p"
    assert _cli(db_deerid, "export", "camtrap-dp", str(out))[0] == 0
    with (out / "deployments.csv").open(newline="") as handle:
        assert sorted(d["deploymentID"].split("-")[0] for d in csv.DictReader(handle)) == ["camera", "dep"]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_cameras_page_adds_and_deletes_deployments(db: Settings, db_deerid: Deerid, tmp_path: Path) -> None:
    """In Chromium against a real uvicorn server: the Cameras page lists no deployment, adds one
    for the Victure camera (its row shows 4 photos, the store has it with its coordinates), an
    out-of-range latitude typed past the field's limits is refused with the server's message and
    not stored, and Delete removes the row. Screenshot in artifacts/."""

    from playwright.sync_api import expect, sync_playwright

    from support.paths import ARTIFACTS

    shots = ARTIFACTS / "test_cameras_page_adds_and_deletes_deployments"
    shots.mkdir(parents=True, exist_ok=True)
    base_url, stop = start_server(create_app(db))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(base_url=base_url, viewport={"width": 1280, "height": 900})
            page.goto("/cameras")
            expect(page.locator("#deployments-table tbody tr")).to_have_count(1)
            expect(page.locator("#deployments-table")).to_contain_text("No deployments yet")
            page.select_option("#dep-camera", label=VICTURE)
            page.fill("#dep-location", "north feeder")
            page.fill("#dep-start", "2021-10-01T00:00:00")
            page.fill("#dep-end", "2021-10-31T00:00:00")
            page.fill("#dep-lat", "44.5")
            page.fill("#dep-lon", "-89.5")
            page.click("#dep-add")
            row = page.locator("#deployments-table tbody tr[data-deployment]")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("north feeder")
            expect(row.locator("td").nth(6)).to_have_text("4")
            page.screenshot(path=str(shots / "deployments.png"), full_page=True)

            page.evaluate("document.querySelector('#dep-lat').removeAttribute('max')")
            page.select_option("#dep-camera", label=EDGE)
            page.fill("#dep-start", "2022-11-01T00:00:00")
            page.fill("#dep-lat", "95")
            page.fill("#dep-lon", "-89.5")
            page.click("#dep-add")
            expect(page.get_by_text("Could not add the deployment")).to_be_visible()
            expect(row).to_have_count(1)

            row.get_by_role("button", name="Delete").click()
            expect(page.locator("#deployments-table")).to_contain_text("No deployments yet")
            browser.close()
    finally:
        stop()
    assert _stored(db_deerid) == 0
