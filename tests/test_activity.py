"""Activity counted in visits, by daylight and moon phase, and the season summary, on real feeder
photos in a real PostgreSQL.

The feeder's place is not in the data, so the tests put the cameras at Columbus, Ohio
(39.96 N, 83.00 W, America/New_York), and check the daylight phase against an independent
hand calculation of the sun's elevation (the NOAA low-precision formulas, written out below),
not against astral, which the product uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Camera, Detection, Image
from deerid.domain.activity import (
    Visit,
    activity,
    clock_zone,
    daylight_phase,
    moon_phase,
)
from deerid.pipeline.ingest import ingest
from support.cli import invoke
from support.db import create_database
from support.paths import FEEDER_JSON
from test_encounters_feeder import GROUND_TRUTH, arrange

LAT, LON = 39.96, -83.0
ZONE = ZoneInfo("America/New_York")
TOKEN = "activity-token"
PHOTOS = ["IMG_7325.JPG", "IMG_7324.JPG", "IMG_7332.JPG", "IMG_4191.JPG", "IMG_4192.JPG"]


def hand_elevation(local: datetime) -> float:
    """Sun elevation in degrees at LAT/LON: mean longitude and anomaly, ecliptic longitude,
    declination and right ascension, Greenwich sidereal time, hour angle (NOAA, ±0.5°)."""
    t = local.replace(tzinfo=ZONE).astimezone(UTC)
    n = t.timestamp() / 86400 + 2440587.5 - 2451545.0
    mean_long = math.radians((280.460 + 0.9856474 * n) % 360)
    anomaly = math.radians((357.528 + 0.9856003 * n) % 360)
    ecliptic = (
        mean_long + math.radians(1.915) * math.sin(anomaly) + math.radians(0.020) * math.sin(2 * anomaly)
    )
    tilt = math.radians(23.439 - 0.0000004 * n)
    dec = math.asin(math.sin(tilt) * math.sin(ecliptic))
    ra = math.atan2(math.cos(tilt) * math.sin(ecliptic), math.cos(ecliptic))
    sidereal = (18.697374558 + 24.06570982441908 * n) % 24
    hour_angle = math.radians(sidereal * 15 + LON) - ra
    lat = math.radians(LAT)
    return math.degrees(
        math.asin(math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle))
    )


def test_daylight_phase_agrees_with_a_hand_calculation_on_every_feeder_time() -> None:
    """Tried: all 46 EXIF times of the feeder set. Day above -0.833°, night below -6°, in between
    dawn before noon and dusk after it. Photos within 0.3° of a boundary are left out: the hand
    formula is good to about half a degree."""
    checked = 0
    for image in GROUND_TRUTH.values():
        if not image.get("datetime"):
            continue
        local = datetime.fromisoformat(image["datetime"])
        e = hand_elevation(local)
        if min(abs(e + 0.833), abs(e + 6.0)) < 0.3:
            continue
        expected = "day" if e > -0.833 else "night" if e < -6 else "dawn" if local.hour < 12 else "dusk"
        assert daylight_phase(local, LAT, LON, ZONE) == expected, image["file"]
        checked += 1
    assert checked >= 40
    # Read off the table by hand: IMG_7332 (5 Nov 2024, 07:00 EST) is between civil dawn (06:38)
    # and sunrise (07:06); IMG_4191 (22 Dec 2022, 17:27) between sunset (17:09) and civil dusk (17:39).
    assert daylight_phase(datetime(2024, 11, 5, 7, 0, 6), LAT, LON, ZONE) == "dawn"
    assert daylight_phase(datetime(2022, 12, 22, 17, 27, 5), LAT, LON, ZONE) == "dusk"
    assert daylight_phase(datetime(2022, 12, 22, 17, 27, 5), None, None, ZONE) == "unknown"


def test_a_clock_zone_that_does_not_fit_the_camera_falls_back_to_solar_time() -> None:
    """Tried: IMG_7312 (28 Nov 2024, 20:07, night at Columbus) read on a server kept on UTC with
    no DEERID_TIMEZONE: UTC is 5.5 hours off the sun's time at 83° W, so the clock is read in
    local mean solar time and the visit stays at night. A machine zone that fits (New York) is
    kept; a zone a person configured is kept even when it does not fit."""
    evening = datetime(2024, 11, 28, 20, 7, 36)
    assert daylight_phase(evening, LAT, LON, UTC, configured=False) == "night"
    assert daylight_phase(evening, LAT, LON, UTC, configured=True) == "day"  # 20:07 UTC is 15:07 there
    assert clock_zone(evening, LON, ZONE, configured=False) is ZONE
    solar = clock_zone(evening, LON, UTC, configured=False)
    assert solar.utcoffset(evening) == timedelta(minutes=-332)


def test_moon_phase_on_known_dates() -> None:
    """Tried: the total lunar eclipse of 8 Nov 2022 (full), the new moons of 23 Dec 2022 and
    1 Nov 2024, and a day 4 days after the latter (a waxing crescent)."""
    assert moon_phase(date(2022, 11, 8)) == "full moon"
    assert moon_phase(date(2022, 12, 23)) == "new moon"
    assert moon_phase(date(2024, 11, 1)) == "new moon"
    assert moon_phase(date(2024, 11, 5)) == "waxing crescent"


def test_counts_visits_and_weeks_of_the_season() -> None:
    """Tried: one deer seen three times: twice in the season's first week, once with no time."""
    visits = [
        Visit("a", 1, datetime(2024, 8, 1, 12, 0), LAT, LON),
        Visit("a", 1, datetime(2024, 8, 7, 23, 0), LAT, LON),
        Visit("a", 2, None),
    ]
    out = activity(visits, ZONE, season=(8, 1))
    assert out.visits == 3 and out.undated == 1
    assert out.by_hour[12] == 1 and out.by_hour[23] == 1 and sum(out.by_hour) == 2
    assert out.by_week == [(date(2024, 8, 1), 2)]
    assert out.by_daylight["day"] == 1 and out.by_daylight["night"] == 1


@pytest.fixture(scope="module")
def feeder(pg_root: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deerid, TestClient]]:
    """Five feeder photos from two cameras, in camera folders, ingested with a 400 s gap (so
    IMG_7325 and IMG_7324, 278 s apart, are one event); the cameras placed at Columbus."""
    root = arrange(tmp_path_factory.mktemp("sd-card"), PHOTOS)
    settings = Settings(
        database_url=create_database(pg_root),
        data_dir=tmp_path_factory.mktemp("activity-data"),
        device="cpu",
        broker_url=None,
        encounter_gap=400.0,
        timezone="America/New_York",
        api_token=TOKEN,
    )
    with Deerid(settings) as deerid:
        ingest(deerid, root, FEEDER_JSON, camera_from_folder=True)
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            yield deerid, client


def _deer_of(deerid: Deerid, file: str, box: int) -> str:
    with deerid.sessions() as s:
        return str(
            s.execute(
                sa.select(Detection.deer_id)
                .join(Image, Image.id == Detection.image_id)
                .where(Image.path.like(f"%/{file}"), Detection.source_index == box)
            ).scalar_one()
        )


def _camera_id(deerid: Deerid, name: str) -> int:
    with deerid.sessions() as s:
        return int(s.execute(sa.select(Camera.id).where(Camera.name == name)).scalar_one())


def test_deer_and_camera_activity_count_visits(feeder: tuple[Deerid, TestClient]) -> None:
    """Tried: the grey doe of IMG_7325 #4 and IMG_7324 #4 (one track, test_encounters_feeder)
    is two photos but one visit, at noon, in daylight, under a waning crescent. Before the
    camera has coordinates its daylight is unknown; an out-of-range latitude is refused and not
    stored; a deployment with coordinates places a camera that has none; after placing the
    cameras the visit is "day"."""
    deerid, client = feeder
    auth = {"Authorization": f"Bearer {TOKEN}"}
    doe = _deer_of(deerid, "IMG_7325.JPG", 4)
    assert doe == _deer_of(deerid, "IMG_7324.JPG", 4)
    gg = _camera_id(deerid, "GG")

    before = client.get(f"/api/deer/{doe}/activity").json()
    assert before["visits"] == 1 and before["undated"] == 0
    assert before["by_daylight"]["unknown"] == 1 and before["by_daylight"]["day"] == 0

    bad = client.patch(f"/api/cameras/{gg}", json={"latitude": 91.0, "longitude": LON}, headers=auth)
    assert bad.status_code == 422
    assert client.get(f"/api/deer/{doe}/activity").json()["by_daylight"]["unknown"] == 1

    # A deployment places the EDGE camera for the 2022 season: its visits get daylight from it
    # while the camera itself still has no coordinates.
    dusk_deer = _deer_of(deerid, "IMG_4191.JPG", 0)
    assert client.get(f"/api/deer/{dusk_deer}/activity").json()["by_daylight"]["unknown"] == 1
    deployed = client.post(
        "/api/deployments",
        json={
            "camera_id": _camera_id(deerid, "EDGE"),
            "latitude": LAT,
            "longitude": LON,
            "start_at": "2022-08-01T00:00:00",
            "end_at": "2023-07-31T23:59:59",
        },
        headers=auth,
    )
    assert deployed.status_code == 201, deployed.text
    assert client.get(f"/api/deer/{dusk_deer}/activity").json()["by_daylight"]["dusk"] == 1

    for name in ("GG", "EDGE"):
        placed = client.patch(
            f"/api/cameras/{_camera_id(deerid, name)}",
            json={"latitude": LAT, "longitude": LON},
            headers=auth,
        )
        assert placed.status_code == 200, placed.text
    out = client.get(f"/api/deer/{doe}/activity").json()
    assert out["visits"] == 1
    assert out["by_hour"][12] == 1 and sum(out["by_hour"]) == 1
    assert out["by_daylight"]["day"] == 1
    assert out["by_moon"]["waning crescent"] == 1
    # Season from 1 August: 28 Nov 2024 is day 119, the first day of week 17.
    assert out["by_week"] == [{"week_start": "2024-11-28", "visits": 1}]
    assert out["timezone"] == "America/New_York"

    dusk = client.get(f"/api/deer/{_deer_of(deerid, 'IMG_4191.JPG', 0)}/activity").json()
    assert dusk["by_daylight"]["dusk"] == 1 and dusk["by_moon"]["new moon"] == 1

    # The GG camera's visits: one per deer per event, so fewer than its deer boxes.
    cam = client.get(f"/api/cameras/{gg}/activity").json()
    with deerid.sessions() as s:
        boxes = s.execute(
            sa.select(sa.func.count(Detection.id))
            .join(Image, Image.id == Detection.image_id)
            .where(Image.camera_id == gg, Detection.deer_id.is_not(None))
        ).scalar_one()
    assert 0 < cam["visits"] < boxes
    assert cam["by_daylight"]["dawn"] >= 1  # IMG_7332 at 07:00
    assert client.get("/api/cameras/999999/activity").status_code == 404


def test_season_summary(feeder: tuple[Deerid, TestClient]) -> None:
    """Tried: the season of the newest photo (from 1 Aug 2024) holds only the GG deer; those first
    seen in the 7 days up to the newest photo (28 Nov) are new this week, IMG_7332's (5 Nov) are
    not; the 2022 season holds the EDGE deer instead."""
    deerid, client = feeder
    season = client.get("/api/season").json()
    assert season["start"] == "2024-08-01" and season["end"] == "2025-08-01"
    ids = {d["deer"]["id"] for d in season["deer"]}
    assert _deer_of(deerid, "IMG_7325.JPG", 4) in ids
    assert _deer_of(deerid, "IMG_4191.JPG", 0) not in ids
    new = {d["deer"]["id"] for d in season["deer"] if d["new_this_week"]}
    assert _deer_of(deerid, "IMG_7325.JPG", 4) in new
    assert _deer_of(deerid, "IMG_7332.JPG", 0) not in new
    assert season["new_this_week"] == len(new)
    assert season["bucks"] + season["does"] + season["other"] == len(season["deer"])
    visits = {c["camera"]["name"]: c["visits"] for c in season["cameras"]}
    assert visits["GG"] > 0 and visits["EDGE"] == 0

    older = client.get("/api/season", params={"at": "2022-12-25"}).json()
    assert older["start"] == "2022-08-01"
    assert _deer_of(deerid, "IMG_4191.JPG", 0) in {d["deer"]["id"] for d in older["deer"]}
    assert client.get("/api/season", params={"at": "not-a-date"}).status_code == 422


def test_report_writes_the_plots_in_process(feeder: tuple[Deerid, TestClient], tmp_path: Path) -> None:
    """Tried: `deerid report DEER --json` for the grey doe writes four PNGs and counts one visit;
    an unknown deer is one clear line and exit code 2, no traceback."""
    deerid, _ = feeder  # its settings' timezone is America/New_York, as the report's hours need
    doe = _deer_of(deerid, "IMG_7325.JPG", 4)
    done = invoke(deerid, "report", doe, "--out", str(tmp_path), "--json")
    missing = invoke(deerid, "report", "no-such-deer")
    assert done.returncode == 0, done.output
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["visits"] == 1
    assert sorted(Path(p).name for p in out["plots"]) == ["daylight.png", "hour.png", "moon.png", "weeks.png"]
    for path in out["plots"]:
        with PILImage.open(path) as png:
            assert png.format == "PNG" and png.width > 300
    assert missing.returncode == 2 and "no deer matches" in missing.output
    assert "Traceback" not in missing.output
