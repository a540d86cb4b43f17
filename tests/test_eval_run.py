"""The evaluation driver and report: synthetic images with a known answer, then real nyala photos."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deerid.core.config import Settings
from deerid.embed.embedder import get_embedder
from deerid.evaluation.report import write_report
from deerid.evaluation.retrieval import load_identity_folder
from deerid.evaluation.run import EvaluationResult, evaluate_folder, evaluate_vectors

NYALA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nyala" / "train"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REQUIRED = {"top1", "top5", "mAP", "n_images", "n_individuals", "n_queries", "n_excluded", "threshold"}


class MeanColourEmbedder:
    """Vector = mean RGB: stands in for a network whose answers are known in advance."""

    model_id = "mean-colour"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls.append(len(images))
        return np.array([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(axis=0) for im in images])


COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def shade(rgb: tuple[int, int, int], sighting: int, side: str) -> tuple[int, int, int]:
    """A sighting and a flank shift the colour a little: near-identical, not identical, vectors."""
    r, g, b = (c + 5 * sighting + (3 if side == "left" else 0) for c in rgb)
    return r, g, b


def cross_colour_similarities() -> np.ndarray:
    vectors = {
        name: [np.array(shade(rgb, s, side), float) for s in (1, 2) for side in ("left", "right")]
        for name, rgb in COLOURS.items()
    }
    sims = [
        a @ b / np.linalg.norm(a) / np.linalg.norm(b)
        for x, y in [("red", "green"), ("red", "blue"), ("green", "blue")]
        for a in vectors[x]
        for b in vectors[y]
    ]
    return np.array(sims)


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    """3 individuals × 2 sightings × 2 flank photos, plus one unreadable file."""
    root = tmp_path / "ids"
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for sighting in (1, 2):
            for side in ("left", "right"):
                colour = shade(rgb, sighting, side)
                Image.new("RGB", (8, 8), colour).save(root / name / f"{sighting}_{side}photo.png")
    (root / "red" / "3_leftphoto.jpg").write_bytes(b"not a jpeg")
    return root


def test_evaluate_folder_on_a_known_answer(colour_folder: Path) -> None:
    embedder = MeanColourEmbedder()
    seen: list[int] = []
    result = evaluate_folder(colour_folder, embedder, threshold=0.85, batch_size=5, progress=seen.append)

    # Files sort blue, green, red; the unreadable one is last, in the third batch of 5.
    assert seen == [5, 5, 3] and embedder.calls == [5, 5, 2]
    assert result.n_images == 12 and result.n_individuals == 3
    assert [Path(p).name for p, _ in result.skipped] == ["3_leftphoto.jpg"]
    assert result.retrieval["top1"] == 1.0 and result.retrieval["mAP"] == 1.0
    assert result.retrieval["n_queries"] == 12
    # Colours never mix at 0.85, so the stream does as well as a perfect embedding, which
    # still splits: a sighting's second photo arriving before any other sighting of that
    # individual may not match its twin and founds a profile.
    at = result.openset.mean
    assert (at.bcubed_precision, at.false_merge_rate) == (1.0, 0.0)
    assert at == result.openset_ceiling.mean
    assert at.bcubed_recall < 1.0 and at.profiles_per_individual > 1.0
    assert result.similarity.auc == 1.0
    # Colours are ~0.35 apart in cosine, shades of one colour ~0.999: the first of a colour to
    # arrive can only link to another colour, so every threshold up to the cross-colour
    # similarity merges falsely, and every one above it is clean.
    cross = cross_colour_similarities()
    assert cross.max() < 0.5
    assert result.calibration.met
    assert cross.min() < result.calibration.threshold <= np.ceil(cross.max() * 100) / 100
    assert result.calibration.bcubed_f1 == result.openset_ceiling.mean.bcubed_f1
    assert result.model_id == "mean-colour"

    d = result.as_dict()
    json.dumps(d, allow_nan=False)
    assert d.keys() >= REQUIRED
    assert {
        "bcubed_precision",
        "bcubed_recall",
        "bcubed_f1",
        "false_merge_rate",
        "profiles_per_individual",
    } <= (d["openset"].keys())
    assert {"threshold", "false_merge_rate"} <= d["calibration"].keys()
    assert {"same_median", "different_median", "auc"} <= d["similarity"].keys()
    assert d["n_skipped"] == 1 and d["skipped"][0]["path"].endswith("3_leftphoto.jpg")


def test_evaluate_folder_refuses_empty_or_unreadable(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images"):
        evaluate_folder(tmp_path, MeanColourEmbedder(), threshold=0.85)
    (tmp_path / "a" / "1_x.jpg").write_bytes(b"broken")
    with pytest.raises(ValueError, match="could be read"):
        evaluate_folder(tmp_path, MeanColourEmbedder(), threshold=0.85)


def test_evaluate_vectors_checks_its_input() -> None:
    vectors = np.eye(4)
    with pytest.raises(ValueError, match="at least 2 individuals"):
        evaluate_vectors(vectors, ["A"] * 4, ["1", "2", "3", "4"], 0.85)
    with pytest.raises(ValueError, match="threshold"):
        evaluate_vectors(vectors, ["A", "A", "B", "B"], ["1", "2", "1", "2"], 1.5)


def test_capture_order_gives_one_order() -> None:
    rad = np.deg2rad([0, 10, 25, 35])
    vectors = np.stack([np.cos(rad), np.sin(rad)], axis=1)
    result = evaluate_vectors(
        vectors, ["A", "A", "B", "B"], ["1", "2", "1", "2"], 0.97, capture_order=[0, 1, 2, 3], orders=5
    )
    assert result.openset.n_orders == 1
    assert result.openset.mean.bcubed_f1 == 1.0  # worked out in test_eval_calibration


def test_no_threshold_means_no_automatic_merges_and_a_probability_is_fitted(tmp_path: Path) -> None:
    """With no threshold in force (no calibration) the stream merges nothing; the report says so,
    and the same-animal probability fitted on encounter scores ranks the close pair higher."""
    rad = np.deg2rad([0, 10, 25, 35])
    vectors = np.stack([np.cos(rad), np.sin(rad)], axis=1)
    result = evaluate_vectors(vectors, ["A", "A", "B", "B"], ["1", "2", "1", "2"], None, orders=2)
    assert result.openset.mean.n_matched == 0 and result.openset.mean.bcubed_precision == 1.0
    out = json.loads(json.dumps(result.as_dict()))
    assert out["threshold"] is None
    assert out["probability"]["n_pairs"] == 8  # 4 encounters × {A, B}: each has another encounter
    assert result.probability is not None and result.probability(0.99) > result.probability(0.9)
    report = write_report(tmp_path / "report", result).read_text()
    assert "active (none: no automatic merges)" in report and "Same-animal probability" in report


def _small_individuals(count: int) -> list[str]:
    """`count` individuals with at least two sightings, fewest photos first (keeps embedding short)."""
    sightings: dict[str, set[str]] = {}
    photos: dict[str, int] = {}
    for _, individual, sighting in load_identity_folder(NYALA):
        sightings.setdefault(individual, set()).add(sighting)
        photos[individual] = photos.get(individual, 0) + 1
    usable = [ind for ind in sightings if len(sightings[ind]) >= 2]
    return sorted(usable, key=lambda ind: (photos[ind], ind))[:count]


@pytest.mark.slow
def test_evaluate_real_photos_with_the_default_embedder(tmp_path: Path) -> None:
    root = tmp_path / "nyala"
    n_files = 0
    for individual in _small_individuals(8):
        (root / individual).mkdir(parents=True)
        for photo in sorted((NYALA / individual).iterdir()):
            (root / individual / photo.name).symlink_to(photo.resolve())
            n_files += 1
    embedder = get_embedder(Settings(data_dir=tmp_path / "data", device="cpu"))

    result = evaluate_folder(root, embedder, threshold=0.85)

    assert isinstance(result, EvaluationResult)
    assert result.n_images == n_files and result.n_individuals == 8 and not result.skipped
    assert result.model_id == embedder.model_id
    r = result.retrieval
    assert r["n_queries"] + r["n_excluded"] == n_files
    assert 0.0 <= r["top1"] <= r["top5"] <= 1.0
    # Zero-shot features are weak but not blind: same-individual pairs are more alike.
    assert result.similarity.same_median > result.similarity.different_median
    assert result.similarity.auc > 0.55
    assert 0.30 <= result.calibration.threshold <= 0.99
    json.dumps(result.as_dict(), allow_nan=False)

    report = write_report(tmp_path / "report", result)
    assert report == tmp_path / "report" / "report.md"
    text = report.read_text(encoding="utf-8")
    for name in ("similarity.png", "bcubed_pr.png", "roc.png", "threshold.png"):
        png = tmp_path / "report" / name
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5_000
        assert f"]({name})" in text
    assert f"{100 * r['top1']:.1f} %" in text
    assert f"{result.calibration.threshold:.2f}" in text
