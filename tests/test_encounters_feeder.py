"""Events, tracks and cameras on the real feeder photos, in a real PostgreSQL.

The feeder set has three Moultrie cameras that all write EXIF Make/Model
"MOULTRIE EDGE"; their burned-in strips name them EDGE (2022), Olpe (2023)
and GG (2024). Copies are arranged one folder per camera in the test's temp dir,
as an SD-card dump would be, and ingested with `--camera-from-folder`.

Consecutive photos of one camera used here (the gap is set to 400 s to cover them):
- GG: IMG_7325 (12:53:46) then IMG_7324 (12:58:24), 278 s apart, five and six deer boxes.
- EDGE: IMG_4222 (17:17:44, colour) then IMG_4223 (17:23:20, infrared), 336 s apart.

Which boxes are the same doe, judged by eye from crops (box index = position in
feeder.detections.json; the photos are minutes apart, so only these calls are sure enough):
- IMG_7325 #4 and IMG_7324 #4: the grey doe feeding head-down on the right, with a
  white throat patch on a grey neck and a pale nose band in both.
- IMG_4222 #3 and IMG_4223 #4: the big doe on the right facing left, at the spinner in the
  first photo and feeding in front of the feeder in the second.
- IMG_4222 #2 and IMG_4223 #2: the deer in front of the feeder showing its rump, white
  tail flagged to the right, in the same pose in both photos.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Assignment, Camera, Detection, DetectionStatus, Event, Image, Track
from deerid.pipeline.ingest import IngestReport, ingest
from support.db import create_database
from support.paths import FEEDER, FEEDER_JSON

GAP = 400.0
GROUND_TRUTH = {im["file"]: im for im in json.loads(FEEDER_JSON.read_text())["images"]}
SAME_DOE = [
    (("IMG_7325.JPG", 4), ("IMG_7324.JPG", 4)),
    (("IMG_4222.JPG", 3), ("IMG_4223.JPG", 4)),
    (("IMG_4222.JPG", 2), ("IMG_4223.JPG", 2)),
]


def camera_folder(file: str) -> str:
    """The folder an SD-card dump would put the photo in: the strip's camera name."""
    image = GROUND_TRUTH[file]
    if image.get("strip_camera_name"):
        return str(image["strip_camera_name"]).split()[0]  # EDGE, Olpe, GG, SIMMONS
    return "victure"


def arrange(root: Path, files: list[str] | None = None) -> Path:
    """Copies of the feeder photos (file times kept) in one folder per camera under `root`."""
    for file in files if files is not None else sorted(GROUND_TRUTH):
        target = root / camera_folder(file) / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(FEEDER / file, target)
    return root


def tracks_by_box(deerid: Deerid) -> dict[tuple[str, int], int | None]:
    """(photo file name, box index) -> track id, for every deer box."""
    with deerid.sessions() as s:
        rows = s.execute(
            sa.select(Image.path, Detection.source_index, Detection.track_id)
            .join(Image, Image.id == Detection.image_id)
            .where(Detection.sex.is_not(None))
        ).all()
    return {(Path(p).name, i): t for p, i, t in rows}


def event_of(deerid: Deerid, file: str) -> Event:
    with deerid.sessions() as s:
        event = s.execute(
            sa.select(Event).join(Image, Image.event_id == Event.id).where(Image.path.like(f"%/{file}"))
        ).scalar_one()
        s.expunge(event)
        return event


def snapshot(deerid: Deerid) -> tuple[object, ...]:
    """Everything encounters store: events with their photos, tracks with their boxes, deer per box."""
    with deerid.sessions() as s:
        events = s.execute(
            sa.select(Event.id, Event.camera_id, Event.start_at, Event.end_at, Event.reason).order_by(
                Event.id
            )
        ).all()
        images = s.execute(sa.select(Image.id, Image.event_id).order_by(Image.id)).all()
        tracks = s.execute(sa.select(Track.id, Track.event_id).order_by(Track.id)).all()
        boxes = s.execute(
            sa.select(Detection.id, Detection.track_id, Detection.deer_id).order_by(Detection.id)
        ).all()
    return tuple(map(tuple, events)), tuple(images), tuple(tracks), tuple(boxes)


@pytest.fixture(scope="module")
def feeder(pg_root: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The feeder photos in camera folders, ingested three times with a 400 s gap and no
    threshold (no automatic merges): first without IMG_7324, then with it, then again."""
    root = arrange(
        tmp_path_factory.mktemp("sd-card"), [f for f in sorted(GROUND_TRUTH) if f != "IMG_7324.JPG"]
    )
    settings = Settings(
        database_url=create_database(pg_root),
        data_dir=tmp_path_factory.mktemp("feeder-data"),
        device="cpu",
        broker_url=None,
        encounter_gap=GAP,
    )
    with Deerid(settings) as deerid:
        first = ingest(deerid, root, FEEDER_JSON, camera_from_folder=True)
        before_7324 = event_of(deerid, "IMG_7325.JPG")
        tracks_before = tracks_by_box(deerid)
        arrange(root, ["IMG_7324.JPG"])
        second = ingest(deerid, root, FEEDER_JSON, camera_from_folder=True)
        after_second = snapshot(deerid)
        third = ingest(deerid, root, FEEDER_JSON, camera_from_folder=True)
        yield {
            "deerid": deerid,
            "first": first,
            "second": second,
            "third": third,
            "before_7324": before_7324,
            "tracks_before": tracks_before,
            "after_second": after_second,
        }


def test_camera_from_folder_tells_the_three_moultrie_edge_cameras_apart(feeder) -> None:  # type: ignore[no-untyped-def]
    """Five folders -> five cameras; the 39 "MOULTRIE EDGE" photos fall into EDGE, Olpe and GG.
    The summary lists them with their photo counts."""
    deerid, first = feeder["deerid"], feeder["first"]
    with deerid.sessions() as s:
        photos = dict(
            s.execute(
                sa.select(Camera.name, sa.func.count(Image.id))
                .join(Image, Image.camera_id == Camera.id)
                .group_by(Camera.name)
            ).all()
        )
    assert photos == {"EDGE": 16, "Olpe": 11, "GG": 12, "victure": 7, "SIMMONS": 1}
    summary = {c["name"]: c["photos"] for c in first.cameras}
    assert summary == {"EDGE": 16, "Olpe": 11, "GG": 11, "victure": 7, "SIMMONS": 1}  # IMG_7324 came later
    assert first.as_dict()["cameras"] == first.cameras


def test_consecutive_photos_make_one_event_per_camera(feeder) -> None:  # type: ignore[no-untyped-def]
    """With a 400 s gap, IMG_7325+IMG_7324 (GG) and IMG_4222+IMG_4223 (EDGE) are events of two
    photos; IMG_3899/3901 (EDGE, 200 s) and IMG_2260/2263 (Victure, 128 s) too; the rest
    are one photo each: 47 photos, 43 events, none spanning two cameras."""
    deerid, third = feeder["deerid"], feeder["third"]
    assert event_of(deerid, "IMG_7325.JPG").id == event_of(deerid, "IMG_7324.JPG").id
    assert event_of(deerid, "IMG_4222.JPG").id == event_of(deerid, "IMG_4223.JPG").id
    assert event_of(deerid, "IMG_3899.JPG").id == event_of(deerid, "IMG_3901.JPG").id
    assert event_of(deerid, "IMG_7326.JPG").id != event_of(deerid, "IMG_7327.JPG").id  # 13 min apart
    gg = event_of(deerid, "IMG_7324.JPG")
    assert (gg.start_at, gg.end_at) == (
        datetime(2024, 11, 28, 12, 53, 46),
        datetime(2024, 11, 28, 12, 58, 24),
    )
    with deerid.sessions() as s:
        assert s.execute(sa.select(sa.func.count(Event.id))).scalar_one() == 43
        spans = s.execute(
            sa.select(Image.event_id, sa.func.count(sa.distinct(Image.camera_id))).group_by(Image.event_id)
        ).all()
    assert all(n == 1 for _, n in spans)
    assert third.events == 43


def test_tracks_link_the_same_doe_across_consecutive_photos(feeder) -> None:  # type: ignore[no-untyped-def]
    """The boxes written down above as the same doe are in one track; every track holds at most
    one box per photo; and each of the two events has as many tracks as its busiest photo
    has deer boxes or more."""
    deerid = feeder["deerid"]
    tracks = tracks_by_box(deerid)
    for a, b in SAME_DOE:
        assert tracks[a] is not None and tracks[a] == tracks[b], (a, b)
    for file in ("IMG_7325.JPG", "IMG_7324.JPG", "IMG_4222.JPG", "IMG_4223.JPG"):
        in_photo = [t for (f, _), t in tracks.items() if f == file and t is not None]
        assert len(in_photo) == len(set(in_photo)), f"two boxes of {file} share a track"
    with deerid.sessions() as s:
        for file, busiest in (("IMG_7324.JPG", 5), ("IMG_4223.JPG", 5)):
            event = event_of(deerid, file)
            n = s.execute(sa.select(sa.func.count(Track.id)).where(Track.event_id == event.id)).scalar_one()
            assert busiest <= n <= 10


def test_a_track_ends_in_one_deer_and_the_summary_counts_tracks(feeder) -> None:  # type: ignore[no-untyped-def]
    """Without a calibration nothing joins automatically: every track founds one new deer, which
    waits for review, and all of a track's boxes are in that deer (later ones by 'track')."""
    deerid, first = feeder["deerid"], feeder["first"]
    with deerid.sessions() as s:
        rows = s.execute(
            sa.select(Detection.track_id, Detection.deer_id, Detection.assignment).where(
                Detection.track_id.is_not(None)
            )
        ).all()
    by_track: dict[int, set[object]] = {}
    for track, deer, _ in rows:
        by_track.setdefault(track, set()).add(deer)
    assert all(len(deer) == 1 and None not in deer for deer in by_track.values())
    assert len({next(iter(d)) for d in by_track.values()}) == len(by_track)  # no two tracks share a deer
    assert sum(1 for *_, a in rows if a is Assignment.TRACK) == len(rows) - len(by_track)
    assert first.auto_joined == 0
    assert first.awaiting_review == first.new_deer == first.tracks
    assert first.reidentified == 60  # 65 identifiable deer boxes, less the five of IMG_7324 (added later)


def test_a_later_neighbouring_photo_extends_the_event_and_continues_its_tracks(feeder) -> None:  # type: ignore[no-untyped-def]
    """IMG_7324, ingested after IMG_7325, joins IMG_7325's stored event (same id, end moved on),
    IMG_7325's boxes keep their tracks, and the grey doe's box continues her track and deer."""
    deerid, before = feeder["deerid"], feeder["before_7324"]
    after = event_of(deerid, "IMG_7324.JPG")
    assert after.id == before.id
    assert before.end_at == datetime(2024, 11, 28, 12, 53, 46)
    assert after.end_at == datetime(2024, 11, 28, 12, 58, 24)
    old, new = feeder["tracks_before"], tracks_by_box(deerid)
    assert all(new[key] == track for key, track in old.items())
    assert new[("IMG_7324.JPG", 4)] == old[("IMG_7325.JPG", 4)]
    second = feeder["second"]
    assert second.photos_new == 1 and second.events == 43


def test_rerunning_the_ingest_changes_nothing(feeder) -> None:  # type: ignore[no-untyped-def]
    """A third ingest of the same folder: no new photo, box, event, track or deer; nothing moved."""
    deerid, third = feeder["deerid"], feeder["third"]
    assert snapshot(deerid) == feeder["after_second"]
    assert third.photos_new == 0 and third.detections_new == 0 and third.reidentified == 0


def test_a_photo_without_exif_time_takes_its_strip_time(feeder) -> None:  # type: ignore[no-untyped-def]
    """IMG_0988 (Simmons) has no EXIF time: its time is read off its info strip (docs/strip.md), so it is
    an ordinary event of its camera at 2020-10-18 11:08:54, not a photo without a trustworthy time.
    (A photo whose strip is unreadable too keeps the file time and its own event: test_strip_ingest.py.)"""
    event = event_of(feeder["deerid"], "IMG_0988.JPG")
    assert event.reason is None and event.start_at == datetime(2020, 10, 18, 11, 8, 54)
    with feeder["deerid"].sessions() as s:
        assert s.execute(sa.select(sa.func.count()).where(Image.event_id == event.id)).scalar_one() == 1


def test_exif_time_later_than_the_file_is_its_own_event(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """Two photos 200 s apart of one camera, one of them with a file time a year before its EXIF
    time (the camera's clock was wrong): that one is an event of its own, "EXIF and file time
    disagree", and the other is not grouped with it."""
    root = tmp_path / "cam"
    root.mkdir()
    for file in ("IMG_3899.JPG", "IMG_3901.JPG"):
        shutil.copy2(FEEDER / file, root / file)
    stamp = datetime(2021, 11, 6).timestamp()
    os.utime(root / "IMG_3899.JPG", (stamp, stamp))
    with Deerid(settings.model_copy(update={"encounter_gap": GAP})) as other:
        ingest(other, root, camera="north")
    bad, good = event_of(deerid, "IMG_3899.JPG"), event_of(deerid, "IMG_3901.JPG")
    assert bad.id != good.id
    assert bad.reason is not None and bad.reason.startswith("EXIF and file time disagree")
    assert good.reason is None


def test_cannot_link_holds_even_when_every_match_would_pass(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """The GG camera's 12 photos with REID_THRESHOLD 0.0, so any two tracks of one sex would merge:
    two tracks of one event still never become one deer, and each track's boxes end in one deer.
    Tracks of different events may (and at 0.0 do) join one another."""
    root = arrange(tmp_path / "sd", [f for f in GROUND_TRUTH if camera_folder(f) == "GG"])
    loose = settings.model_copy(update={"encounter_gap": GAP, "reid_threshold": 0.0})
    with Deerid(loose) as other:
        report: IngestReport = ingest(other, root, FEEDER_JSON, camera_from_folder=True)
    assert report.auto_joined > 0  # at 0.0 tracks of other events did join
    with deerid.sessions() as s:
        rows = s.execute(
            sa.select(Image.event_id, Detection.track_id, Detection.deer_id)
            .join(Image, Image.id == Detection.image_id)
            .where(Detection.status == DetectionStatus.ASSIGNED)
        ).all()
    assert rows and all(track is not None for _, track, _ in rows)
    deer_of_track: dict[int, set[object]] = {}
    tracks_of_deer_in_event: dict[tuple[int, object], set[int]] = {}
    for event, track, deer in rows:
        deer_of_track.setdefault(track, set()).add(deer)
        tracks_of_deer_in_event.setdefault((event, deer), set()).add(track)
    assert all(len(d) == 1 for d in deer_of_track.values())
    assert all(len(t) == 1 for t in tracks_of_deer_in_event.values())


def test_events_and_tracks_through_the_api(feeder) -> None:  # type: ignore[no-untyped-def]
    """GET /api/events (per camera, paginated), /api/events/{id} (photos in capture order, tracks
    with crops and deer), /api/tracks/{id}, and a deer's sightings carrying track and event ids;
    unknown ids answer 404."""
    from fastapi.testclient import TestClient

    from deerid.api.main import create_app

    deerid = feeder["deerid"]
    gg = event_of(deerid, "IMG_7324.JPG")
    with TestClient(create_app(deerid.settings), base_url="http://localhost") as api:
        page = api.get("/api/events", params={"camera_id": gg.camera_id, "limit": 5}).json()
        assert page["total"] == 11 and len(page["items"]) == 5  # GG: 12 photos, one pair
        assert all(e["camera"] == "GG" for e in page["items"])
        rest = api.get("/api/events", params={"camera_id": gg.camera_id, "limit": 5, "offset": 10}).json()
        assert len(rest["items"]) == 1
        detail = api.get(f"/api/events/{gg.id}").json()
        # 12 deer boxes in 6 tracks: the five continuing animals (7325 #0, a doe, continues as 7324
        # #0, classed unknown: an unknown box may continue any class) and 7325 #5, gone by 7324.
        assert detail["event"]["photos"] == 2 and detail["event"]["tracks"] == len(detail["tracks"]) == 6
        assert [Path(p["image_url"]).name for p in detail["photos"]] and detail["event"]["reason"] is None
        times = [p["captured_at"] for p in detail["photos"]]
        assert times == sorted(times)
        doe = next(t for t in detail["tracks"] if len(t["detections"]) == 2)
        assert len(doe["deer"]) == 1 and all(d["crop_url"].endswith("/crop") for d in doe["detections"])
        one = api.get(f"/api/tracks/{doe['id']}").json()
        assert one == doe
        sightings = api.get(f"/api/deer/{doe['deer'][0]['id']}/detections").json()
        assert {s["track_id"] for s in sightings} == {doe["id"]}
        assert {s["event_id"] for s in sightings} == {gg.id}
        assert api.get("/api/events/999999").status_code == 404
        assert api.get("/api/tracks/999999").status_code == 404
