"""Model registry, calibrated thresholds and re-embedding.

What is tried: switching the active model (and DEERID_MODEL overriding it),
an unknown model name, a calibration stored for one model id not leaking to
another, no calibration meaning no automatic merges (and `deerid config`
saying so), REID_THRESHOLD overriding a calibration, and `deerid reembed`
replacing every vector of the old model without touching assignments.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Deer, Detection, DetectionStatus
from deerid.pipeline.ingest import ingest
from deerid.pipeline.reembed import reembed
from deerid.registry import calibration
from deerid.registry.models import active_model_name, list_models, use_model
from support.env import subprocess_env
from support.paths import FEEDER, FEEDER_JSON

DEERID = str(Path(sys.executable).parent / "deerid")


def test_active_model_and_its_override(settings: Settings, deerid: Deerid) -> None:
    assert active_model_name(settings) == ("efficientnet_lite1", "default")
    names = [e.name for e in list_models(settings)]
    assert names[:4] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50"]
    use_model(settings, "efficientnet_lite0")
    assert active_model_name(settings) == ("efficientnet_lite0", "deerid models use")
    assert deerid.embedder().model_id.startswith("efficientnet_lite0-224-")
    forced = settings.model_copy(update={"model": "efficientnet_lite2"})
    assert active_model_name(forced) == ("efficientnet_lite2", "DEERID_MODEL")


def test_unknown_model_is_a_clear_error(settings: Settings) -> None:
    out = subprocess.run(
        [DEERID, "models", "use", "megadescriptor"],
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "no model 'megadescriptor'" in out.stderr and "efficientnet_lite1" in out.stderr


def test_calibration_belongs_to_one_model(settings: Settings, deerid: Deerid) -> None:
    model_a, model_b = "efficientnet_lite1-240-aaaa", "efficientnet_lite0-224-bbbb"
    none = calibration.resolve_threshold(settings, model_a)
    assert (none.value, none.source) == (None, "none") and "no calibration" in none.detail
    calibration.save(settings, model_a, {"threshold": 0.61, "max_false_merge": 0.02, "data": "nyala"})
    chosen = calibration.resolve_threshold(settings, model_a)
    assert (chosen.value, chosen.source) == (0.61, "calibrated") and "nyala" in chosen.detail
    assert "2%" in chosen.detail
    assert calibration.resolve_threshold(settings, model_b).value is None  # never carried over
    assert calibration.load_probability(settings, model_a) is None  # an old record without a map
    explicit = Settings(**{**settings.model_dump(), "reid_threshold": 0.9})
    assert calibration.resolve_threshold(explicit, model_a).source == "environment"

    env = subprocess_env(settings)
    model_id = deerid.embedder().model_id
    calibration.save(settings, model_id, {"threshold": 0.7, "max_false_merge": 0.05, "data": "test"})
    out = subprocess.run([DEERID, "config", "--json"], env=env, capture_output=True, text=True)
    values = json.loads(out.stdout)
    assert values["threshold_in_force"] == 0.7 and values["threshold_source"] == "calibrated"
    assert values["automatic_merges"] is True
    out = subprocess.run(
        [DEERID, "config", "--json"], env=env | {"REID_THRESHOLD": "0.8"}, capture_output=True, text=True
    )
    assert json.loads(out.stdout)["threshold_source"] == "environment"

    (settings.data_dir / "calibration.json").unlink()
    out = subprocess.run([DEERID, "config"], env=env, capture_output=True, text=True)
    assert "threshold in force: none — no automatic merges" in out.stdout
    assert "no calibration for this model" in out.stdout
    values = json.loads(
        subprocess.run([DEERID, "config", "--json"], env=env, capture_output=True, text=True).stdout
    )
    assert values["threshold_in_force"] is None and values["automatic_merges"] is False
    assert values["reid_threshold"] is None


def test_reembed_replaces_vectors_and_keeps_assignments(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    names = ["IMG_2263.JPG", "IMG_2336.JPG", "IMG_3899.JPG", "IMG_3901.JPG"]
    photos = tmp_path / "card"
    photos.mkdir()
    for name in names:
        shutil.copy(FEEDER / name, photos / name)
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    (tmp_path / "md.json").write_text(json.dumps(data))
    ingest(deerid, photos, tmp_path / "md.json")
    factory = deerid.sessions
    with factory() as s:
        before = dict(
            s.execute(sa.select(Detection.id, Detection.deer_id).where(Detection.deer_id.is_not(None))).all()
        )
        old_vectors = {
            d.id: np.asarray(d.embedding)
            for d in s.execute(sa.select(Detection)).scalars()
            if d.embedding is not None
        }
    assert len(before) == 4

    use_model(settings, "efficientnet_lite0")
    new_id = deerid.embedder().model_id
    (photos / "IMG_3901.JPG").rename(tmp_path / "moved.jpg")  # one photo gone: reported, not lost
    out = reembed(deerid).as_dict()
    assert out["model_id"] == new_id and out["detections"] == 4 and out["reembedded"] == 3
    assert len(out["failed"]) == 1 and "IMG_3901" in out["failed"][0]["reason"]
    with factory() as s:
        dets = {
            d.id: d for d in s.execute(sa.select(Detection).where(Detection.deer_id.is_not(None))).scalars()
        }
        deer = s.execute(sa.select(Deer)).scalars().all()
    assert {i: d.deer_id for i, d in dets.items()} == before
    assert all(d.status is DetectionStatus.ASSIGNED for d in dets.values())
    moved = [d for d in dets.values() if d.model_id != new_id]
    assert len(moved) == 1  # keeps its old vector, which is never compared with the new ones
    for d in dets.values():
        if d.model_id == new_id:
            assert not np.allclose(np.asarray(d.embedding), old_vectors[d.id])
    assert all(a.model_id == new_id for a in deer)

    (tmp_path / "moved.jpg").rename(photos / "IMG_3901.JPG")
    again = reembed(deerid).as_dict()
    assert again["detections"] == 1 and again["reembedded"] == 1
    assert reembed(deerid).as_dict()["detections"] == 0  # nothing left: resumable, idempotent
