"""Real camera-trap bursts (../shared/data/bursts/peru-s90/SDZG2: 51 photos, 16 bursts of about
3 shots 0.5 s apart, MegaDetector boxes) through a plain ingest with every default.

What is tried: a camera that writes no make or model (NUL bytes) is told by its folder, so its
photos still form events; the events found are exactly the manifest's bursts; and, with no
calibration, the profiles made before any review are no more than the events (a burst's boxes of
one animal are one track, one deer), where one deer per box was made before encounters existed.
"""

from __future__ import annotations

import csv

import sqlalchemy as sa

from deerid.app import Deerid
from deerid.db.tables import Deer, Detection, Image
from deerid.pipeline.ingest import ingest
from support.paths import SHARED

PERU = SHARED / "data" / "bursts" / "peru-s90"


def test_bursts_become_events_and_few_profiles(deerid: Deerid) -> None:
    report = ingest(deerid, PERU / "SDZG2", PERU / "SDZG2.detections.json")
    with (PERU.parent / "manifest.csv").open() as fh:
        bursts = {row["burst"] for row in csv.DictReader(fh) if row["camera"] == "SDZG2"}
    assert report.cameras == [{"name": "folder SDZG2", "photos": 51}]
    assert report.events == len(bursts) == 16
    with deerid.sessions() as s:
        profiles = s.execute(sa.select(sa.func.count()).select_from(Deer)).scalar_one()
        boxes = s.execute(sa.select(sa.func.count()).where(Detection.deer_id.is_not(None))).scalar_one()
        # Every event the photos of one burst share, and no event spans two bursts.
        by_file = dict(s.execute(sa.select(Image.path, Image.event_id)).all())
    with (PERU.parent / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["camera"] == "SDZG2"]
    event_of_burst: dict[str, set[int]] = {}
    for r in rows:
        event_of_burst.setdefault(r["burst"], set()).add(
            by_file[str((SHARED / "data" / "bursts" / r["file"]).resolve())]
        )
    assert all(len(events) == 1 for events in event_of_burst.values())
    assert len({e for events in event_of_burst.values() for e in events}) == len(bursts)
    assert report.auto_joined == 0 and boxes == report.reidentified == 27
    assert profiles <= report.events and profiles < boxes
