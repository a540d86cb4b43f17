"""`adapt()`: fine-tune on unlabelled crops with pseudo-labels (issue 9, lever 4).

A user has thousands of deer crops and few confirmed ones. Two things are known without
anyone labelling: the crops of one *encounter* (a track; on nyala a sighting) show one
animal, and crops whose encounters look alike may be one animal too. So:

1. the frozen-trunk cache of `train()` is built for every crop (shared with `train()`, which
   then reads it back from disk);
2. every encounter's mean vector under the untrained model is linked to the encounters that
   are among its `link_k` nearest *and* hold it among theirs, when their cosine reaches
   `link_threshold`; the connected components are the pseudo-identities (encounters are
   must-links, so a cluster never splits a track);
3. `train()` runs unchanged with cluster = individual and encounter = sighting: ArcFace
   against per-cluster centres (initialised at the cluster means) is a cluster-memory
   contrastive loss with a margin, as in Cluster Contrast (Dai et al., 2021), with the
   augmentations and the other crops of the encounter as positives. Without labels there
   is nothing to choose an epoch on, so `val_fraction=0` and the last epoch is kept.

The result is a normal trained model folder (`kind: trained`, its own `-ft-` model id) with
an `adapted` block in model.json. Resume: the cache and `train()`'s epoch checkpoint
survive a kill; a rerun on the same crops with the same config continues, and a finished
one is returned at once. See docs/ranking.md ("Lever 4") for what it measured.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deerid.embed.model_file import (
    WEIGHTS_FILE,
    AdaptedBlock,
    TrainedModelFile,
    parse_model_file,
    read_model_file,
    write_model_file,
)
from deerid.training.cache import CLEAN
from deerid.training.data import TrainingDataError, check_samples
from deerid.training.loop import FrozenSplit, TrainConfig, TrainedModel, embed_cached, train
from deerid.training.progress import ProgressCallback, ProgressEvent, emit, progress_line

Crop = tuple[Path, str]  # (image file, encounter): crops of one encounter show one animal

# Below these a run has almost nothing to learn from: with fewer than 40 crops the clusters
# are nearly all single tracks and ArcFace memorises them within an epoch; without at least
# 5 tracks seen twice there are no encounter positives, only augmentations of one crop.
MIN_CROPS = 40
MIN_MULTI_VIEW = 5


def _train_defaults() -> TrainConfig:
    # Two augmented views instead of train's four: the frozen-trunk cache is most of the cost
    # on a CPU (≈ 5,000 crops must fit in 30 min on 2 cores), and pseudo-labels, not view
    # variety, limit what adaptation learns.
    return TrainConfig(n_aug_views=2, epochs=6, val_fraction=0.0)


@dataclass
class AdaptConfig:
    # Mutual nearest encounters only: on nyala, zero-shot links are right 25-30 % of the time at
    # k=1 and 3-12 % at k=3, where components chain into clusters of 11-42 encounters
    # (docs/ranking.md, lever 4).
    link_k: int = 1
    link_threshold: float = 0.90  # cosine of the encounters' mean vectors (untrained model)
    min_crops: int = MIN_CROPS
    min_multi_view: int = MIN_MULTI_VIEW
    train: TrainConfig = field(default_factory=_train_defaults)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_json()
        return json.loads(json.dumps(d))

    def key_json(self) -> dict[str, Any]:
        """What changes the result: not the device or where the cache lives."""
        d = self.to_json()
        d.pop("min_crops")
        d.pop("min_multi_view")
        d["train"] = self.train.recipe_hash()
        return d


class AdaptDataError(TrainingDataError):
    """The gallery is empty or too small to adapt on; the message says why and what to do."""


@dataclass(frozen=True)
class PseudoLabels:
    labels: np.ndarray  # cluster index per crop
    n_encounters: int
    n_clusters: int
    joined: int  # clusters holding two or more encounters
    largest: int  # encounters in the largest cluster

    def summary(self) -> dict[str, int]:
        return {
            "encounters": self.n_encounters,
            "clusters": self.n_clusters,
            "clusters_joining_encounters": self.joined,
            "largest_cluster_encounters": self.largest,
        }


def check_gallery(encounters: Sequence[str], *, min_crops: int, min_multi_view: int) -> None:
    """Refuse a gallery too small to learn from, with a message a user can act on."""
    n = len(encounters)
    if n == 0:
        raise AdaptDataError(
            "the gallery holds no deer crops to adapt on: "
            "ingest photos first (deerid ingest DIR --detections FILE)"
        )
    sizes: dict[str, int] = {}
    for e in encounters:
        sizes[e] = sizes.get(e, 0) + 1
    multi = sum(1 for v in sizes.values() if v >= 2)
    if n < min_crops:
        raise AdaptDataError(
            f"the gallery is too small to adapt on: {n} deer crops, at least {min_crops} are needed "
            "(ingest more photos, or train on confirmed deer with `deerid train --from-db`)"
        )
    if multi < min_multi_view:
        raise AdaptDataError(
            f"the gallery is too small to adapt on: {multi} tracks with two or more photos of one animal, "
            f"at least {min_multi_view} are needed; adapt learns which views belong together from tracks "
            "(ingest more photos, ideally bursts or video-like sequences)"
        )


def pseudo_labels(
    vectors: np.ndarray, encounters: Sequence[str], *, k: int, threshold: float
) -> PseudoLabels:
    """Cluster crops into pseudo-identities; every encounter stays whole.

    Mutual k-nearest links over encounter mean vectors keep one popular encounter from
    chaining everything together (a hub is in many lists but holds only k of them), and the
    threshold keeps only links that are likely the same animal.
    """
    keys = sorted(set(encounters))
    index = {e: i for i, e in enumerate(keys)}
    enc = np.array([index[e] for e in encounters], dtype=np.int64)
    v = np.asarray(vectors, dtype=np.float32)
    means = np.zeros((len(keys), v.shape[1]), dtype=np.float32)
    np.add.at(means, enc, v)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)

    m = len(keys)
    k = max(0, min(k, m - 1))
    parent = np.arange(m)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    if k > 0:
        nearest = np.zeros((m, k), dtype=np.int64)
        sims = np.zeros((m, k), dtype=np.float32)
        for start in range(0, m, 1024):  # blocks: 5,000 encounters would need 100 MB at once
            s = means[start : start + 1024] @ means.T
            rows = np.arange(len(s))
            s[rows, rows + start] = -np.inf
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            nearest[start : start + len(s)] = top
            sims[start : start + len(s)] = s[rows[:, None], top]
        neighbour_sets = [set(row.tolist()) for row in nearest]
        for i in range(m):
            for j, sim in zip(nearest[i].tolist(), sims[i].tolist(), strict=True):
                if j > i and sim >= threshold and i in neighbour_sets[j]:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)  # smallest index as root: deterministic
    roots = np.array([find(i) for i in range(m)])
    _, cluster_of_encounter, per_cluster = np.unique(roots, return_inverse=True, return_counts=True)
    return PseudoLabels(
        labels=cluster_of_encounter[enc],
        n_encounters=m,
        n_clusters=len(per_cluster),
        joined=int((per_cluster >= 2).sum()),
        largest=int(per_cluster.max()) if len(per_cluster) else 0,
    )


def write_info(out_dir: Path, info: dict[str, Any]) -> None:
    """Write a trained model's `info` (as in TrainedModel.info) back as its model.json;
    ValueError if it is not a trained model's description."""
    model_file = parse_model_file(info)
    if not isinstance(model_file, TrainedModelFile):
        raise ValueError(f"not a trained model's description: {out_dir}")
    write_model_file(out_dir, model_file)


def finished(
    out_dir: Path, key: str, field: Literal["input_key", "source_key"] = "input_key"
) -> TrainedModel | None:
    """The model a previous run with this key finished in `out_dir`, if any."""
    done = read_model_file(out_dir)
    if (
        isinstance(done, TrainedModelFile)
        and done.adapted is not None
        and getattr(done.adapted, field) == key
        and (out_dir / WEIGHTS_FILE).is_file()
    ):
        return TrainedModel.from_file(out_dir, done)
    return None


def adapt(
    crops: Sequence[Crop],
    config: AdaptConfig,
    out_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    resume: bool = True,
) -> TrainedModel:
    """Adapt the default backbone to unlabelled `crops`; write a trained model into `out_dir`.

    Raises AdaptDataError for a gallery that is empty or too small (also after unreadable
    files are dropped). Progress events: train()'s, plus `{"phase": "pseudo", ...}` and a
    final `{"phase": "done", ...}`.
    """
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    check_gallery([c[1] for c in crops], min_crops=config.min_crops, min_multi_view=config.min_multi_view)
    data = check_samples([(Path(p), str(e), str(e)) for p, e in crops])
    encounters = [s[2] for s in data.samples]
    check_gallery(encounters, min_crops=config.min_crops, min_multi_view=config.min_multi_view)
    key = hashlib.sha256(
        json.dumps({"config": config.key_json(), "data": data.combined_hash()}, sort_keys=True).encode()
    ).hexdigest()
    if resume and (done := finished(out_dir, key)) is not None:
        emit(progress, phase="done", reused=True, model_id=done.model_id)
        return done

    tcfg = config.train
    cache_dir = Path(tcfg.cache_dir) if tcfg.cache_dir else out_dir / "cache"
    frozen = FrozenSplit.load(tcfg)
    feats, cache_s = frozen.features(data, tcfg, cache_dir, progress)
    vectors = embed_cached(frozen.tail, feats[:, CLEAN], frozen.device).numpy()
    del feats, frozen  # train() loads the cache again; two copies would double the memory
    t1 = time.monotonic()
    pseudo = pseudo_labels(vectors, encounters, k=config.link_k, threshold=config.link_threshold)
    emit(progress, phase="pseudo", crops=len(encounters), seconds=time.monotonic() - t1, **pseudo.summary())
    if pseudo.n_clusters < 2:
        raise AdaptDataError(
            f"every crop fell into one pseudo-identity (link threshold {config.link_threshold}); "
            "nothing to tell apart: raise the threshold or ingest more animals"
        )

    samples = [
        (path, f"c{label}", encounter)
        for (path, _, encounter), label in zip(data.samples, pseudo.labels.tolist(), strict=True)
    ]

    def relay(event: ProgressEvent) -> None:
        # The second cache pass only reads back what was just built, and the final line is ours.
        if event.get("phase") not in ("cache", "done"):
            emit(progress, **event)

    model = train(samples, replace(tcfg, cache_dir=str(cache_dir)), out_dir, progress=relay, resume=resume)
    summary = pseudo.summary()
    adapted_file = replace(
        model.model_file(),
        adapted=AdaptedBlock(
            input_key=key,
            config=config.to_json(),
            crops=len(encounters),
            skipped_unreadable=len(data.skipped),
            encounters=summary["encounters"],
            clusters=summary["clusters"],
            clusters_joining_encounters=summary["clusters_joining_encounters"],
            largest_cluster_encounters=summary["largest_cluster_encounters"],
            seconds={"cache": cache_s, "total": time.monotonic() - t_start},
        ),
        # Pseudo-labels cannot measure a threshold: train() held nothing out, and this says why.
        calibration_note=(
            "adapted without labels: no calibration, so no automatic merges until `deerid calibrate` is run"
        ),
    )
    write_model_file(out_dir, adapted_file)
    info = adapted_file.to_json()
    if not tcfg.keep_cache and not tcfg.cache_dir:
        shutil.rmtree(cache_dir, ignore_errors=True)
    emit(
        progress,
        phase="done",
        reused=False,
        model_id=model.model_id,
        best_epoch=info["metrics"]["best_epoch"],
        seconds=time.monotonic() - t_start,
    )
    return TrainedModel(model.model_id, out_dir, info)


def adapt_progress_line(event: ProgressEvent) -> str:
    if event.get("phase") == "crops":
        return f"cutting crops {event['done']}/{event['total']}"
    if event.get("phase") == "pseudo":
        return (
            f"pseudo-labels: {event['crops']} crops, {event['encounters']} tracks → "
            f"{event['clusters']} clusters ({event['clusters_joining_encounters']} join several tracks, "
            f"the largest {event['largest_cluster_encounters']})"
        )
    if event.get("phase") == "done" and event.get("reused"):
        return f"already adapted on these crops with this config: {event['model_id']}"
    return progress_line(event)
