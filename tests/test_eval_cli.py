"""`deerid eval` and `deerid calibrate` on real photos, from a folder and from the database.

What is tried: figures and report from a labelled folder; a calibration stored
and then shown in force by `deerid config`; `--from-db` with no confirmed
sightings (clear error), and with the feeder set's two known bucks confirmed
as a reviewer would (buck-A: 5 boxes over 10 days, buck-B: 2 boxes 3 minutes
apart, so a single visit).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Detection, Image
from deerid.pipeline.ingest import ingest
from deerid.pipeline.labelled import confirmed_vectors, export_confirmed_crops
from deerid.store.deer import recompute_profile
from support.env import subprocess_env
from support.paths import FEEDER, FEEDER_JSON, NYALA

DEERID = str(Path(sys.executable).parent / "deerid")


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEERID, *args], env=subprocess_env(settings), capture_output=True, text=True)


@pytest.fixture
def nyala_subset(tmp_path: Path) -> Path:
    """Six individuals of nyala train, linked (not copied) into a folder."""
    root = tmp_path / "nyala6"
    root.mkdir()
    for individual in sorted(p for p in NYALA.iterdir() if p.is_dir())[:6]:
        (root / individual.name).symlink_to(individual, target_is_directory=True)
    return root


def test_eval_prints_figures_and_writes_a_report(
    settings: Settings, nyala_subset: Path, tmp_path: Path
) -> None:
    out = run(settings, "eval", str(nyala_subset), "--json", "--report", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["n_individuals"] == 6 and figures["model_id"].startswith("efficientnet_lite1-240-")
    for key in ("top1", "top5", "mAP"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["top5"] >= figures["top1"]
    assert {"bcubed_f1", "false_merge_rate", "profiles_per_individual"} <= figures["openset"].keys()
    report = Path(figures["report"])
    assert report.read_text().startswith("# Re-identification evaluation")
    assert all((report.parent / png).stat().st_size > 1000 for png in ("similarity.png", "threshold.png"))


def test_calibration_is_stored_and_in_force(settings: Settings, nyala_subset: Path) -> None:
    out = run(settings, "calibrate", str(nyala_subset), "--max-false-merge", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["stored"] and result["met"] and result["false_merge_rate"] <= 0.5
    assert result["auto_threshold"] == result["threshold"] and result["max_false_merge"] == 0.5
    assert result["probability"]["n_pairs"] > 0 and 0 < result["probability_at_threshold"] < 1
    assert "same-animal probability at score" in out.stdout
    config = json.loads(run(settings, "config", "--json").stdout)
    assert config["threshold_in_force"] == result["threshold"]
    assert config["threshold_source"] == "calibrated"


def test_calibrate_needs_a_source(settings: Settings) -> None:
    out = run(settings, "calibrate")
    assert out.returncode == 2 and "--from-db" in out.stderr
    empty = run(settings, "calibrate", "--from-db")
    assert empty.returncode == 2 and "at least 2 are needed" in empty.stderr


def _confirm_known_bucks(deerid: Deerid) -> None:
    """What a reviewer does: put each known buck's boxes in one deer and confirm them."""
    truth = json.loads(FEEDER_JSON.read_text())
    boxes: dict[str, list[tuple[str, int]]] = {}
    for image in truth["images"]:
        for index, det in enumerate(image["detections"]):
            if det.get("individual"):
                boxes.setdefault(det["individual"], []).append((image["file"], index))
    factory = deerid.sessions
    with factory() as s, s.begin():
        for keys in boxes.values():
            ids = [
                s.execute(
                    sa.select(Detection.id)
                    .join(Image, Image.id == Detection.image_id)
                    .where(Image.path.like(f"%/{name}"), Detection.source_index == index)
                ).scalar_one()
                for name, index in keys
            ]
            old = set(s.execute(sa.select(Detection.deer_id).where(Detection.id.in_(ids))).scalars())
            keep = s.get(Detection, ids[0]).deer_id  # type: ignore[union-attr]
            s.execute(
                sa.update(Detection)
                .where(Detection.id.in_(ids))
                .values(deer_id=keep, confirmed_at=datetime.now(UTC))
            )
            for deer_id in old:
                recompute_profile(s, deer_id)


def test_labelled_data_from_confirmed_sightings(settings: Settings, deerid: Deerid, tmp_path: Path) -> None:
    ingest(deerid, FEEDER, FEEDER_JSON)
    _confirm_known_bucks(deerid)
    data = confirmed_vectors(deerid, deerid.embedder().model_id)
    assert sorted(data.individuals.count(i) for i in set(data.individuals)) == [2, 5]
    per_deer = {
        i: {s for s, j in zip(data.sightings, data.individuals, strict=True) if j == i}
        for i in data.individuals
    }
    assert sorted(len(v) for v in per_deer.values()) == [1, 5]  # buck-B's two frames are one visit

    samples, problems = export_confirmed_crops(deerid, tmp_path / "crops")
    assert len(samples) == 7 and problems == []
    assert all(path.is_file() and path.stat().st_size > 1000 for path, _, _ in samples)

    out = run(settings, "calibrate", "--from-db", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["evaluation"]["n_images"] == 7 and result["stored"] is False
    assert result["max_false_merge"] == 0.02 and result["probability"]["n_pairs"] > 0  # fit_from_db
    assert result["evaluation"]["n_queries"] == 5  # buck-B has no second visit to query against


def test_eval_review_reports_decisions_per_photo(
    settings: Settings, nyala_subset: Path, tmp_path: Path
) -> None:
    """`deerid eval DIR --review --json`: the review figures under the issue's keys, from the
    product's own queue answered by an oracle, with the curve as a PNG; without --review they are
    absent, and a k outside the keys 1–9 is refused."""
    out = run(
        settings, "eval", str(nyala_subset), "--review", "--k", "4", "--json", "--report", str(tmp_path / "r")
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    review = figures["review"]
    assert set(review["decisions_per_image_to_f1"]) == {"0.8", "0.9", "0.95"}
    assert set(review["f1_at_decisions_per_image"]) == {"0.25", "0.5", "1"}
    assert review["k"] == 4 and review["decisions"] >= review["matches"] > 0
    reached = [v for v in review["decisions_per_image_to_f1"].values() if v is not None]
    assert reached == sorted(reached)  # a higher F1 never costs fewer decisions
    assert "decisions per image to F1 0.8" in out.stdout
    assert (Path(figures["report"]).parent / "review.png").stat().st_size > 1000
    plain = run(settings, "eval", str(nyala_subset), "--json", "--report", str(tmp_path / "p"))
    assert "review" not in json.loads(plain.stdout.strip().splitlines()[-1])
    assert run(settings, "eval", str(nyala_subset), "--review", "--k", "12").returncode != 0
