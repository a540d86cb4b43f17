"""`deerid train` wired end to end: train on a labelled folder, list, activate, evaluate.

What is tried: a tiny training run from the CLI, the trained model listed and
activated (with no held-out individuals to calibrate on, `models use` says no
calibration is in force, so no automatic merges), `eval --model` on it, a refused
--out name and a missing source. The calibration a training run stores for its
model is tried in test_calibration_trap.py.
The training itself (determinism, resume, bad input) is tested in test_train_loop.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deerid.core.config import Settings
from support.env import subprocess_env
from support.paths import NYALA

DEERID = str(Path(sys.executable).parent / "deerid")


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEERID, *args], env=subprocess_env(settings), capture_output=True, text=True)


def test_train_list_use_eval(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "three"
    folder.mkdir()
    for individual in sorted(p for p in NYALA.iterdir() if p.is_dir())[:3]:
        (folder / individual.name).symlink_to(individual, target_is_directory=True)

    trained = run(settings, "train", str(folder), "--out", "mine", "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    progress = trained.stderr
    assert progress.count("caching frozen features") == 4 and "epoch 1/1" in progress and "ETA" in progress
    # Three individuals leave none to hold out, so there is nothing to calibrate on: said, not guessed.
    assert "calibration: no validation individuals were held out" in trained.stdout

    listed = json.loads(run(settings, "models", "list", "--json").stdout)
    mine = [m for m in listed if m["name"] == "mine"]
    assert mine and mine[0]["kind"] == "trained" and not mine[0]["active"]
    info = {"model_id": mine[0]["model_id"]}
    assert info["model_id"].startswith("efficientnet_lite1-240-ft-")
    again = run(settings, "train", str(folder), "--out", "mine", "--epochs", "1", "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["model_id"] == info["model_id"]  # reused

    used = run(settings, "models", "use", "mine")
    assert used.returncode == 0 and info["model_id"] in used.stdout
    assert "calibration in force: none — no automatic merges" in used.stdout
    config = json.loads(run(settings, "config", "--json").stdout)
    assert config["active_model_id"] == info["model_id"]
    assert config["threshold_in_force"] is None and config["threshold_source"] == "none"

    evaluated = run(settings, "eval", str(folder), "--model", "mine", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["model_id"] == info["model_id"]


def test_train_refuses_bad_arguments(settings: Settings, tmp_path: Path) -> None:
    assert "--out NAME" in run(settings, "train", str(tmp_path)).stderr
    assert "--out NAME" in run(settings, "train", str(tmp_path), "--out", "efficientnet_lite1").stderr
    nothing = run(settings, "train", "--out", "x")
    assert nothing.returncode == 2 and "--from-db" in nothing.stderr
    few = run(settings, "train", "--from-db", "--out", "x")
    assert few.returncode == 2 and "at least 2 are needed" in few.stderr
