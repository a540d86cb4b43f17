"""`deerid adapt`: fine-tuning on the stored, unlabelled deer crops (issue 9, lever 4).

Real photos (../shared feeder and Peru bursts) ingested into a real PostgreSQL, then the real
command in a subprocess. What is tried: the pseudo-labels keep tracks whole and link only
mutual near neighbours; an empty and a tiny gallery are refused with one clear line (exit 2)
and leave no model behind; a run killed with SIGKILL after its first epoch resumes from its
checkpoint on the next call instead of starting over, registers a trained model that is not
made active, and a third call on the unchanged gallery returns the finished model at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from deerid.core.config import Settings
from deerid.training.adapt import AdaptDataError, check_gallery, pseudo_labels
from support.builders import World
from support.cards import feeder_card
from support.env import subprocess_env
from support.paths import FEEDER, FEEDER_JSON, SHARED

DEERID = str(Path(sys.executable).parent / "deerid")
PERU = SHARED / "data" / "bursts" / "peru-s90"


def run(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEERID, *args], env=subprocess_env(settings), capture_output=True, text=True, timeout=timeout
    )


def _unit(rows: list[list[float]]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_pseudo_labels_keep_tracks_whole_and_link_only_mutual_neighbours() -> None:
    """Tried: two crops of one track always share a label, even when their vectors differ most;
    two tracks whose means are mutual nearest neighbours above the threshold join; a track
    whose nearest is already taken by a closer one (not mutual at k=1) stays alone; a
    threshold above every cosine joins nothing."""
    vectors = _unit(
        [
            [1, 0, 0, 0],  # track a
            [0.9, 0.1, 0, 0],  # track b: a's mutual nearest
            [0, 0, 1, 0],  # track c, first view
            [0, 0, 0, 1],  # track c, second view: orthogonal to the first, same animal
            [0.6, 0.0, 0.0, 0.8],  # track d: its nearest is e (0.62), but ...
            [0.1, 0.0, 0.7, 0.7],  # track e: ... e's nearest is c (0.99)
        ]
    )
    tracks = ["a", "b", "c", "c", "d", "e"]
    p = pseudo_labels(vectors, tracks, k=1, threshold=0.5)
    labels = p.labels.tolist()
    assert labels[2] == labels[3]  # one track, one label
    assert labels[0] == labels[1]  # mutual nearest, cosine 0.99
    assert labels[2] == labels[5]  # c and e are mutual nearest
    assert labels[4] not in (labels[0], labels[2])  # d points at e, e points at c
    assert p.n_encounters == 5 and p.n_clusters == 3 and p.joined == 2 and p.largest == 2
    alone = pseudo_labels(vectors, tracks, k=3, threshold=0.999)
    assert alone.n_clusters == 5 and alone.labels[2] == alone.labels[3]


def test_check_gallery_names_what_is_missing() -> None:
    """Tried: the three refusals (no crops, too few crops, too few tracks seen twice) and a
    gallery just at both minimums, which passes."""
    with pytest.raises(AdaptDataError, match="no deer crops"):
        check_gallery([], min_crops=4, min_multi_view=2)
    with pytest.raises(AdaptDataError, match="3 deer crops, at least 4"):
        check_gallery(["a", "a", "b"], min_crops=4, min_multi_view=1)
    with pytest.raises(AdaptDataError, match="1 tracks with two or more photos of one animal, at least 2"):
        check_gallery(["a", "a", "b", "c"], min_crops=4, min_multi_view=2)
    check_gallery(["a", "a", "b", "b"], min_crops=4, min_multi_view=2)


def test_adapt_refuses_an_empty_and_a_tiny_gallery(settings: Settings, tmp_path: Path) -> None:
    """Tried: `deerid adapt` on a database with no photos, then with 3 feeder photos (a handful of
    crops): both exit 2 with one line saying why and what to do, and no model folder is made."""
    empty = run(settings, "adapt", "--out", "refused-adapt")
    assert empty.returncode == 2, empty.stderr
    assert "no deer crops to adapt on" in empty.stderr and "Traceback" not in empty.stderr
    assert not (settings.models_dir / "refused-adapt").exists()

    names = sorted(p.name for p in FEEDER.iterdir() if p.suffix.lower() == ".jpg")[:3]
    card, md = feeder_card(tmp_path, names)
    assert run(settings, "ingest", str(card), "--detections", str(md)).returncode == 0
    tiny = run(settings, "adapt", "--out", "refused-adapt")
    assert tiny.returncode == 2, tiny.stderr
    assert "too small to adapt on" in tiny.stderr and "at least 40 are needed" in tiny.stderr
    assert len(tiny.stderr.strip().splitlines()) == 1
    assert not (settings.models_dir / "refused-adapt").exists()
    assert "--out NAME" in run(settings, "adapt").stderr


def _kill_after_first_epoch(settings: Settings) -> str:
    proc = subprocess.Popen(
        [DEERID, "adapt", "--out", "adapted", "--epochs", "2"],
        env=subprocess_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 240
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("epoch 1/2"):
                os.kill(proc.pid, signal.SIGKILL)  # no handler runs: as a power cut would
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def test_adapt_resumes_after_a_kill_and_is_not_activated(settings: Settings) -> None:
    """Tried: the feeder and Peru bursts ingested (about 100 deer crops, bursts as tracks), an
    adapt of 2 epochs killed right after epoch 1, then rerun: it says it resumes after epoch 1,
    runs only epoch 2 and finishes; the model is listed as trained but not active; a
    third run on the unchanged gallery reuses it without cutting a crop."""
    for folder, md in ((FEEDER, FEEDER_JSON), (PERU / "SDZG2", PERU / "SDZG2.detections.json")):
        ingested = run(settings, "ingest", str(folder), "--detections", str(md), "--json")
        assert ingested.returncode == 0, ingested.stderr
    active_before = json.loads(run(settings, "config", "--json").stdout)["active_model_id"]

    first = _kill_after_first_epoch(settings)
    assert "pseudo-labels:" in first and "caching frozen features" in first
    model_dir = settings.models_dir / "adapted"
    assert (model_dir / "checkpoint.pt").is_file() and not (model_dir / "model.json").exists()

    resumed = run(settings, "adapt", "--out", "adapted", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.splitlines()
    resumed_at = [int(x.split()[-1]) for x in lines if x.startswith("resuming after epoch")]
    assert resumed_at and resumed_at[0] >= 1, resumed.stderr
    ran = [int(x.split()[1].split("/")[0]) for x in lines if x.startswith("epoch ")]
    assert ran == list(range(resumed_at[0] + 1, 3)), resumed.stderr  # only what was left
    assert "deerid models use adapted" in resumed.stdout
    summary = json.loads((model_dir / "model.json").read_text())
    assert [h["epoch"] for h in summary["metrics"]["history"]] == [1, 2]

    again = run(settings, "adapt", "--out", "adapted", "--epochs", "2")
    assert again.returncode == 0, again.stderr
    assert "already adapted on these crops" in again.stderr and "cutting crops" not in again.stderr
    assert summary["model_id"] in again.stdout

    adapted = summary["adapted"]
    assert adapted["crops"] >= 40 and adapted["encounters"] < adapted["crops"]
    assert summary["model_id"].startswith("efficientnet_lite1-240-ft-")
    assert not (model_dir / "crops").exists() and not (model_dir / "cache").exists()
    assert not (model_dir / "checkpoint.pt").exists()
    listed = {m["name"]: m for m in json.loads(run(settings, "models", "list", "--json").stdout)}
    assert listed["adapted"]["kind"] == "trained" and not listed["adapted"]["active"]
    assert listed["adapted"]["model_id"] == summary["model_id"]
    assert json.loads(run(settings, "config", "--json").stdout)["active_model_id"] == active_before


def test_gallery_groups_boxes_by_track_and_confirmed_deer(settings: Settings, world: World) -> None:
    """Tried, in a real database: two boxes of one track share an encounter; a box of another
    track and a box with no track that a person confirmed into the same deer are joined into
    one encounter; an unconfirmed box with no track stays alone; too-small and non-deer boxes
    and boxes of a missing photo are not in the gallery."""
    from datetime import UTC, datetime

    from deerid.db.tables import Deer, Detection, DetectionStatus, Event, Image, Track
    from deerid.domain.classes import Sex
    from deerid.training.gallery import gallery_boxes
    from support.builders import random_unit_vector

    ids = [world.sighting(random_unit_vector(i)) for i in range(8)]
    a1, a2, b1, c1, d1, small, other, gone = ids
    with world.factory() as s, s.begin():
        event = Event()
        s.add(event)
        s.flush()
        t1, t2 = Track(event_id=event.id), Track(event_id=event.id)
        s.add_all([t1, t2])
        deer = Deer(name="Buck 1", sex=Sex.BUCK)
        s.add(deer)
        s.flush()
        for det_id, values in {
            a1: {"track_id": t1.id},
            a2: {"track_id": t1.id},
            b1: {"track_id": t2.id, "deer_id": deer.id, "confirmed_at": datetime.now(UTC)},
            c1: {"deer_id": deer.id, "confirmed_at": datetime.now(UTC)},
            small: {"status": DetectionStatus.TOO_SMALL},
            other: {"status": DetectionStatus.NOT_DEER, "sex": None},
        }.items():
            s.execute(sa.update(Detection).where(Detection.id == det_id).values(**values))
        gone_image = s.get(Detection, gone).image_id
        s.execute(sa.update(Image).where(Image.id == gone_image).values(missing_since=datetime.now(UTC)))
    with world.factory() as s:
        boxes = {b.detection_id: b.encounter for b in gallery_boxes(s)}
    assert set(boxes) == {a1, a2, b1, c1, d1}
    assert boxes[a1] == boxes[a2] and boxes[b1] == boxes[c1]
    assert len({boxes[a1], boxes[b1], boxes[d1]}) == 3
