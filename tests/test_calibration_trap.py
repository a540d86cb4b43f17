"""The calibration trap of issue 7, reproduced and closed.

The trap: a model made by `deerid train` and switched on with `deerid models use`
ran at the default threshold 0.85, but its similarities sit far higher, so every new
sighting joined one deer. What is tried here, with a small real training run on
nyala individuals and photos of other individuals it never saw:
- the trap is real: every pair of the new photos, even of different individuals,
  is above 0.85 under the trained model (so the old default merged them all);
- `models use` puts the model's own held-out calibration in force and says so;
- with that calibration removed, nothing merges automatically: as many deer as tracks;
- with the calibration in force, tracks join only at or above the calibrated threshold,
  and the new photos stay almost all apart (at 0.85 they were one deer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Assignment, Deer, Detection
from deerid.evaluation.retrieval import load_identity_folder
from deerid.pipeline.ingest import ingest
from deerid.registry.calibration import load_probability, resolve_threshold
from deerid.training import TrainConfig, train
from support.env import subprocess_env
from support.paths import NYALA

DEERID = str(Path(sys.executable).parent / "deerid")
NAME = "trap-test"

# Small and fast (as in test_train_loop.py), but with validation individuals held out:
# 12 individuals, a quarter of them (3) held out, so training can calibrate on them.
CONFIG = TrainConfig(
    input_size=64,
    trainable_blocks=1,
    n_aug_views=1,
    epochs=2,
    batch_size=16,
    val_fraction=0.25,
    seed=3,
)


def _by_individual() -> dict[str, list[tuple[Path, str, str]]]:
    out: dict[str, list[tuple[Path, str, str]]] = {}
    for item in load_identity_folder(NYALA):
        out.setdefault(item[1], []).append(item)
    return out


@pytest.fixture(scope="module")
def trained(models_dir: Path) -> dict:  # type: ignore[type-arg]
    """The model's info (model.json), trained into the shared models dir as `trap-test`."""
    by_ind = _by_individual()
    samples = [it for ind in sorted(by_ind)[:12] for it in by_ind[ind]]
    return train(samples, CONFIG, models_dir / NAME).info


def _card(root: Path, individuals: list[str], flank: str) -> tuple[Path, Path, dict[str, str]]:
    """Two sightings each of `individuals` as camera photos, days apart (each its own event), with a
    detections file boxing the animal; returns (folder, detections file, photo name -> individual)."""
    by_ind = _by_individual()
    card = root / f"card-{flank}"
    card.mkdir()
    truth: dict[str, str] = {}
    images = []
    for ind in individuals:
        chosen = [it for it in by_ind[ind] if it[0].stem.endswith(flank)][:2]
        assert len(chosen) == 2
        for path, _, sighting in chosen:
            name = f"{ind}_{sighting}_{flank}.jpg"
            shutil.copy(path, card / name)
            # Days apart: no two photos share an event (or a track) under any encounter gap.
            when = 1_700_000_000 + 86_400 * len(truth)
            os.utime(card / name, (when, when))
            truth[name] = ind
            images.append(
                {
                    "file": name,
                    "detections": [{"category": "1", "conf": 0.95, "bbox": [0.02, 0.02, 0.96, 0.96]}],
                }
            )
    detections = root / f"md-{flank}.json"
    detections.write_text(
        json.dumps(
            {
                "info": {"format_version": "1.4"},
                "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
                "images": images,
            }
        )
    )
    return card, detections, truth


def _deer_members(deerid: Deerid, truth: dict[str, str]) -> dict[object, set[str]]:
    """deer id -> the individuals of its sightings."""
    with deerid.sessions() as s:
        rows = s.execute(
            sa.text(
                "SELECT d.deer_id, i.path FROM detections d JOIN images i ON i.id = d.image_id "
                "WHERE d.deer_id IS NOT NULL"
            )
        ).all()
    members: dict[object, set[str]] = {}
    for deer_id, path in rows:
        members.setdefault(deer_id, set()).add(truth[Path(path).name])
    return members


def test_trained_model_never_runs_at_a_default(
    settings: Settings,
    deerid: Deerid,
    trained: dict,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    env = subprocess_env(settings)
    record = trained["calibration"]
    assert record is not None, trained["calibration_note"]
    assert record["max_false_merge"] == 0.02 and record["probability"]["n_pairs"] > 0

    used = subprocess.run([DEERID, "models", "use", NAME], env=env, capture_output=True, text=True)
    assert used.returncode == 0, used.stderr
    assert trained["model_id"] in used.stdout
    assert "calibration in force:" in used.stdout and "false-merge target 2%" in used.stdout
    assert "stored from the model's own training run" in used.stdout
    model_id = deerid.embedder().model_id
    choice = resolve_threshold(settings, model_id)
    assert (choice.value, choice.source) == (record["threshold"], "calibrated")
    assert choice.value is not None and choice.value > 0.85
    assert load_probability(settings, model_id) is not None

    by_ind = _by_individual()
    seen_twice = [ind for ind in sorted(by_ind)[40:] if len({it[2] for it in by_ind[ind]}) >= 2]
    unseen = seen_twice[:4]  # never trained on nor held out (training took the first 12)
    card, detections, truth = _card(tmp_path, unseen, "leftphoto")
    # The trap: under this model even different individuals score above the old default.
    embedder = deerid.embedder()
    names = sorted(truth)
    vectors = embedder.embed([Image.open(card / n).convert("RGB") for n in names])
    sims = vectors @ vectors.T
    different = np.array([[truth[a] != truth[b] for b in names] for a in names])
    assert sims[different].min() > 0.85

    # No calibration: no automatic merges at all, one deer per track (one photo, one box, one track).
    (settings.data_dir / "calibration.json").unlink()
    assert resolve_threshold(settings, model_id).value is None
    ingest(deerid, card, detections)
    with deerid.sessions() as s:
        n_deer = s.execute(sa.select(sa.func.count(Deer.id))).scalar()
        n_boxes = s.execute(
            sa.select(sa.func.count(Detection.id)).where(Detection.deer_id.is_not(None))
        ).scalar()
    assert n_boxes == len(truth) == 8
    assert n_deer == n_boxes  # at 0.85 this was 1

    # The model's own calibration back in force: what merges, merges rightly.
    again = subprocess.run([DEERID, "models", "use", NAME], env=env, capture_output=True, text=True)
    assert "stored from the model's own training run" in again.stdout
    card2, detections2, truth2 = _card(tmp_path, unseen, "rightphoto")
    ingest(deerid, card2, detections2)
    threshold = resolve_threshold(settings, model_id).value
    assert threshold == record["threshold"]
    with deerid.sessions() as s:
        joined = (
            s.execute(sa.select(Detection.similarity).where(Detection.assignment == Assignment.MATCHED))
            .scalars()
            .all()
        )
    assert all(similarity >= threshold for similarity in joined)  # only at the calibrated threshold
    members = _deer_members(deerid, truth | truth2)
    # At 0.85 all 16 photos were one deer. This tiny model, calibrated on 3 held-out individuals,
    # joins a few (measured: 15 deer, one of them mixing two individuals); most stay apart.
    assert len(members) >= 12
    assert sum(len(individuals) > 1 for individuals in members.values()) <= 1
