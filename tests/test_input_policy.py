"""Issue 9, lever 3 (input): what benchmarks/input_policy.py relies on, on real nyala photos.

The study (docs/ranking.md, "Lever 3: input") wired nothing into the product, so these tests
hold the benchmark's own building blocks to the product: its padding keeps a crop's aspect,
an input size gives a model id of its own while today's 240 stays as it was, and its
query-by-query top-1 is `retrieval_metrics`' top-1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deerid.core.config import Settings
from deerid.embed.embedder import get_embedder
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics

# The benchmarks folder is on the path only while they import: its module names (ingest,
# review, ...) must not shadow anything imported later in this process.
_BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
sys.path.insert(0, _BENCHMARKS)
try:
    import input_policy
    from openset_cv import folds
finally:
    # The benchmarks add their own folder too, once each.
    sys.path[:] = [p for p in sys.path if p.rstrip("/") != _BENCHMARKS]

NYALA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nyala" / "train"


def _wide_photo() -> Path:
    """A real nyala crop clearly wider than tall (most are; squashing them stretches the animal)."""
    for path, _, _ in load_identity_folder(NYALA):
        with Image.open(path) as image:
            if image.width >= 1.3 * image.height:
                return path
    raise AssertionError("no wide nyala photo")


def test_mean_padding_keeps_the_aspect_of_a_real_crop() -> None:
    path = _wide_photo()
    with Image.open(path) as image:
        w, h = image.size
        out = input_policy.config("padmean0-240").prepare(image.convert("RGB"), 240)
    assert out.shape == (240, 240, 3) and out.dtype == np.uint8
    # Rows that are the ImageNet mean everywhere are padding; the rest is the photo.
    is_pad = (out == np.asarray(input_policy.IMAGENET_MEAN_RGB, dtype=np.uint8)).all(axis=(1, 2))
    content_rows = int((~is_pad).sum())
    assert abs(content_rows - round(240 * h / w)) <= 1
    assert is_pad[0] and is_pad[-1] and not is_pad[120]


def test_margin_shrinks_the_crop_inside_the_square() -> None:
    path = _wide_photo()
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        tight = input_policy.config("padmean0-240").prepare(rgb, 240)
        loose = input_policy.config("padmean10-240").prepare(rgb, 240)
        mirrored = input_policy.config("padreflect10-240").prepare(rgb, 240)
    mean = np.asarray(input_policy.IMAGENET_MEAN_RGB, dtype=np.uint8)
    # 10 % of the longer side on each side: the crop spans 240 / 1.2 = 200 columns, not 240.
    assert (tight[:, 0] != mean).any(axis=1).any()
    content_cols = int((~(loose == mean).all(axis=(0, 2))).sum())
    assert abs(content_cols - 200) <= 1
    # Reflect padding fills the border with the photo's own pixels, never the flat mean.
    assert not (mirrored[0] == mean).all()


def test_unknown_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown configuration"):
        input_policy.config("letterbox240")
    assert input_policy.config("sq288flip").flip and input_policy.config("sq288flip").size == 288


@pytest.fixture(scope="module")
def nyala_rows() -> list[tuple[Path, str, str]]:
    """Every photo of 10 nyala individuals with two or more sightings."""
    items = load_identity_folder(NYALA)
    sightings: dict[str, set[str]] = {}
    for _, ind, sig in items:
        sightings.setdefault(ind, set()).add(sig)
    chosen = sorted(i for i in sightings if len(sightings[i]) >= 2)[:10]
    return [it for it in items if it[1] in chosen]


@pytest.mark.slow
def test_input_size_has_its_own_model_id_and_240_is_unchanged(
    nyala_rows: list[tuple[Path, str, str]], tmp_path: Path
) -> None:
    """The resolution rows are embedded under ids of their own (`DEERID_EMBED_INPUT_SIZE`), so
    their vectors can never mix with today's; and asking for 240 is exactly today's model."""
    photos = [Image.open(p).convert("RGB") for p, _, _ in nyala_rows[:6]]
    today = get_embedder(Settings(data_dir=tmp_path, device="cpu", runtime="torch"))
    same = get_embedder(Settings(data_dir=tmp_path, device="cpu", runtime="torch", embed_input_size=240))
    larger = get_embedder(Settings(data_dir=tmp_path, device="cpu", runtime="torch", embed_input_size=288))
    assert today.model_id == same.model_id and today.model_id.startswith("efficientnet_lite1-240-")
    assert larger.model_id.startswith("efficientnet_lite1-288-") and larger.model_id != today.model_id
    a, b, c = today.embed(photos), same.embed(photos), larger.embed(photos)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
    # The benchmark feeds prepared arrays; for the square policy they are today's bytes.
    prepared = [input_policy.config("sq240").prepare(p, 240) for p in photos]
    np.testing.assert_array_equal(today.embed(prepared), a)


@pytest.mark.slow
def test_paired_top1_is_retrieval_metrics_top1(
    nyala_rows: list[tuple[Path, str, str]], tmp_path: Path
) -> None:
    """The paired comparison counts exactly the queries and hits of `retrieval_metrics`, fold by
    fold, so its interval is about the table's own numbers."""
    embedder = get_embedder(Settings(data_dir=tmp_path, device="cpu", runtime="torch"))
    x = np.asarray(embedder.embed([Image.open(p).convert("RGB") for p, _, _ in nyala_rows]), dtype=np.float64)
    ind, sig = [i for _, i, _ in nyala_rows], [s for _, _, s in nyala_rows]
    hits, who = input_policy.top1_hits(x, ind, sig)
    start = 0
    for test in folds(np.asarray(ind)):
        held = np.flatnonzero(test)
        m = retrieval_metrics(x[held], [ind[i] for i in held], [sig[i] for i in held])
        n = int(m["n_queries"])
        if n:
            assert hits[start : start + n].mean() == pytest.approx(m["top1"])
        start += n
    assert start == len(hits) == len(who)
    same = input_policy.paired_top1(hits, hits, who, ind, reps=50)
    assert same["top1_diff_points"] == 0 and same["ci95"] == [0.0, 0.0]
