"""`train()`: fine-tune the last blocks of a backbone + a 512-d head with metric learning.

Recipe (measured in docs/training.md): freeze the stem and early blocks and cache
their output for the clean view, its mirror and a few augmented views of each image;
train the last `trainable_blocks` blocks, the head conv and the projection (initialised
to the shipped orthogonal head) with ArcFace; pick the epoch by retrieval on a held-out
split of *individuals*; centre the output on the training mean.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

import deerid
from deerid.embed.backbones import BackboneSpec, get_backbone_spec
from deerid.embed.weights import load_network, resolve_weights
from deerid.evaluation.retrieval import retrieval_metrics
from deerid.training.augment import AugmentConfig
from deerid.training.cache import CLEAN, MIRROR, build_cache, cache_key
from deerid.training.calibration import calibrate_held_out
from deerid.training.data import Sample, check_samples, split_individuals
from deerid.training.losses import SubCenterArcFace, batch_hard_triplet
from deerid.training.model import Tail, n_blocks, split_network

MODEL_FILE = "model.json"
WEIGHTS_FILE = "tail.pt"
CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1


@dataclass
class TrainConfig:
    backbone: str = "efficientnet_lite1"
    input_size: int = 240
    trainable_blocks: int = 6  # Lite1: its last two stages (5 + 1 blocks) + the head conv
    n_aug_views: int = 4  # cached augmented views per image, besides clean and mirror
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flip: Literal["none", "augment", "new_class"] = "none"  # how the mirror view is used in training
    loss: Literal["arcface", "triplet"] = "arcface"
    subcenters: int = 1
    arcface_scale: float = 30.0
    arcface_margin: float = 0.3
    label_smoothing: float = 0.1
    triplet_margin: float = 0.2
    triplet_k: int = 4  # images per individual in a triplet batch
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3  # projection and loss weights
    backbone_lr: float = 1e-4  # trainable blocks
    weight_decay: float = 1e-4
    val_fraction: float = 0.15  # of individuals, for choosing the epoch; 0 = train all epochs
    patience: int = 5
    center: bool = False  # subtract the training-data mean at inference (measured: lowers top-1)
    tta_flip: bool = False  # average an image's vector with its mirror's at inference
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    cache_dir: str | None = None  # default: <out_dir>/cache, deleted after success
    keep_cache: bool = False

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def recipe_hash(self) -> str:
        """Hash of everything that changes the trained weights (not device or cache location)."""
        d = self.to_json()
        for k in ("device", "cache_dir", "keep_cache"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        aug = d.pop("augment", {})
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        return cls(augment=AugmentConfig(**aug), **d)


@dataclass
class TrainedModel:
    model_id: str
    model_dir: Path
    info: dict[str, Any]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("DEVICE=cuda but no CUDA device is available to torch")
    return torch.device(device)


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def make_trained_model_id(
    backbone: str, input_size: int, weights_sha: str, config: TrainConfig, base_sha: str
) -> str:
    payload = json.dumps(
        {"tail": weights_sha, "base": base_sha, "recipe": config.recipe_hash(), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return f"{backbone}-{input_size}-ft-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _emit(progress: Callable[[dict], None] | None, **event: Any) -> None:
    if progress is not None:
        progress(event)


@torch.no_grad()
def embed_cached(tail: Tail, feats: torch.Tensor, device: torch.device, batch: int = 128) -> torch.Tensor:
    """Normalised (uncentred) vectors of cached trunk outputs (n, C, h, w)."""
    tail.eval()
    out = [tail(feats[i : i + batch].to(device).float()).cpu() for i in range(0, len(feats), batch)]
    return torch.cat(out) if out else torch.zeros(0, tail.projection.shape[1])


def cached_features(
    paths: list[Path],
    sha256: list[str],
    trunk: torch.nn.Module,
    spec: BackboneSpec,
    config: TrainConfig,
    *,
    split: int,
    cache_dir: Path,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """The frozen trunk's features of every view of every photo (`split` = the trunk's blocks),
    read from the cache when an earlier run (train, adapt, a benchmark) wrote them."""
    key = cache_key(spec.name, config.input_size, split, config.augment, config.n_aug_views, config.seed)
    return build_cache(
        paths,
        sha256,
        trunk,
        input_size=config.input_size,
        mean=spec.mean,
        std=spec.std,
        aug=config.augment,
        n_aug=config.n_aug_views,
        seed=config.seed,
        key=key,
        cache_dir=cache_dir,
        device=device,
        progress=progress,
    )


def train(
    samples: list[Sample],
    config: TrainConfig,
    out_dir: Path,
    *,
    progress: Callable[[dict], None] | None = None,
    resume: bool = True,
) -> TrainedModel:
    """Train on (path, individual, sighting) samples; write the model into `out_dir`.

    Unreadable images are skipped and counted (`info["data"]["skipped_unreadable"]`);
    fewer than 2 individuals raise TrainingDataError. With `resume`, a finished model
    with the same recipe and data is returned as is, and an interrupted run continues
    from its last epoch checkpoint.
    """
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    data = check_samples(samples)
    data_hash = data.combined_hash()
    run_key = hashlib.sha256(f"{config.recipe_hash()}:{data_hash}".encode()).hexdigest()

    if resume and (out_dir / MODEL_FILE).is_file():
        try:
            info = json.loads((out_dir / MODEL_FILE).read_text())
        except ValueError:  # a damaged description: train again
            info = {}
        if info.get("run_key") == run_key and (out_dir / WEIGHTS_FILE).is_file():
            _emit(progress, phase="done", reused=True, model_id=info["model_id"])
            return TrainedModel(info["model_id"], out_dir, info)

    device = resolve_device(config.device)
    spec = get_backbone_spec(config.backbone)
    weights = resolve_weights(spec.weights)
    network = load_network(spec, weights.path)
    total_blocks = n_blocks(network)
    trunk, tail = split_network(network, config.trainable_blocks)
    trunk.to(device)
    tail.to(device)

    torch.manual_seed(config.seed)
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(
            data,
            data_hash,
            run_key,
            config,
            out_dir,
            trunk,
            tail,
            spec,
            weights.sha256,
            total_blocks,
            device,
            progress,
            resume,
            t_start,
        )
    finally:
        torch.use_deterministic_algorithms(prev_det)


def _train(
    data,
    data_hash,
    run_key,
    config,
    out_dir,
    trunk,
    tail,
    spec,
    base_sha,
    total_blocks,
    device,
    progress,
    resume,
    t_start,
) -> TrainedModel:
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(config.cache_dir) if config.cache_dir else out_dir / "cache"
    t0 = time.monotonic()
    feats = cached_features(
        [s[0] for s in data.samples],
        data.sha256,
        trunk,
        spec,
        config,
        split=total_blocks - config.trainable_blocks,
        cache_dir=cache_dir,
        device=device,
        progress=lambda done, total: _emit(
            progress, phase="cache", done=done, total=total, seconds=time.monotonic() - t0
        ),
    )
    cache_s = time.monotonic() - t0

    individuals = [s[1] for s in data.samples]
    sightings = [s[2] for s in data.samples]
    train_ids, val_ids = split_individuals(sorted(set(individuals)), config.val_fraction, config.seed)
    label_of = {ind: i for i, ind in enumerate(train_ids)}
    train_idx = np.array([i for i, ind in enumerate(individuals) if ind in label_of])
    val_idx = np.array([i for i, ind in enumerate(individuals) if ind not in label_of])
    labels = torch.tensor([label_of[individuals[i]] for i in train_idx])
    n_classes = len(train_ids) * (2 if config.flip == "new_class" else 1)

    gen = torch.Generator().manual_seed(config.seed)
    criterion = SubCenterArcFace(
        tail.projection.shape[1],
        n_classes,
        k=config.subcenters,
        scale=config.arcface_scale,
        margin=config.arcface_margin,
        label_smoothing=config.label_smoothing,
        generator=gen,
    ).to(device)
    if config.loss == "arcface":
        v0 = embed_cached(tail, feats[train_idx, CLEAN], device)
        init_v, init_l = v0, labels
        if config.flip == "new_class":
            vm = embed_cached(tail, feats[train_idx, MIRROR], device)
            init_v, init_l = torch.cat([v0, vm]), torch.cat([labels, labels + len(train_ids)])
        criterion.init_from(init_v.to(device), init_l.to(device))

    tail_params = [p for n, p in tail.named_parameters() if n != "projection"]
    groups = [
        {"params": tail_params, "lr": config.backbone_lr},
        {"params": [tail.projection], "lr": config.lr, "weight_decay": 0.0},
    ]
    if config.loss == "arcface":
        groups.append({"params": list(criterion.parameters()), "lr": config.lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / config.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: 0.5 * (1 + math.cos(math.pi * min(step / max(1, steps_per_epoch * config.epochs), 1.0))),
    )

    last_val: dict[str, float | None] = {"val_top1": None, "val_mAP": None}

    def validate() -> float | None:
        """Selection score on the validation individuals: top-1 + mAP (mAP steadies a noisy top-1)."""
        last_val.update(val_top1=None, val_mAP=None)
        if len(val_idx) == 0:
            return None
        v = embed_cached(tail, feats[val_idx, CLEAN], device).numpy()
        m = retrieval_metrics(v, [individuals[i] for i in val_idx], [sightings[i] for i in val_idx])
        if not m["n_queries"]:
            return None
        last_val.update(val_top1=float(m["top1"]), val_mAP=float(m["mAP"]))
        return float(m["top1"] + m["mAP"])

    history: list[dict[str, Any]] = []
    start_epoch = 0
    untrained_score = validate()
    best = {"score": untrained_score, "epoch": 0, "state": copy.deepcopy(tail.state_dict())}
    ckpt_path = out_dir / CHECKPOINT_FILE
    if resume and ckpt_path.is_file():
        try:
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        except Exception:
            ck = None
        if ck and ck.get("run_key") == run_key:
            tail.load_state_dict(ck["tail"])
            criterion.load_state_dict(ck["criterion"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            start_epoch, history, best = ck["epoch"], ck["history"], ck["best"]
            _emit(progress, phase="resume", epoch=start_epoch)

    epoch_times: list[float] = [h["seconds"] for h in history]
    for epoch in range(start_epoch, config.epochs):
        if best["score"] is not None and epoch - best["epoch"] > config.patience:
            break
        te = time.monotonic()
        tail.train()
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        batches = _batches(labels, config, g)
        total_loss, n_seen = 0.0, 0
        for rows in batches:
            idx = train_idx[rows.numpy()]
            y = labels[rows]
            views, y = _pick_views(len(rows), y, config, len(train_ids), g)
            x = feats[torch.from_numpy(idx), views].to(device).float()
            y = y.to(device)
            emb = tail.features(x)
            if config.loss == "arcface":
                loss = criterion(emb, y)
            else:
                loss = batch_hard_triplet(emb, y, config.triplet_margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(rows)
            n_seen += len(rows)
        score = validate()
        if score is not None and (best["score"] is None or score > best["score"]):
            best = {"score": score, "epoch": epoch + 1, "state": copy.deepcopy(tail.state_dict())}
        seconds = time.monotonic() - te
        epoch_times.append(seconds)
        row = {
            "epoch": epoch + 1,
            "loss": total_loss / max(n_seen, 1),
            "val_score": score,
            **last_val,
            "seconds": seconds,
        }
        history.append(row)
        torch.save(
            {
                "run_key": run_key,
                "epoch": epoch + 1,
                "tail": tail.state_dict(),
                "criterion": criterion.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "history": history,
                "best": best,
            },
            ckpt_path.with_suffix(".tmp"),
        )
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)
        eta = float(np.mean(epoch_times)) * (config.epochs - epoch - 1)
        _emit(progress, phase="epoch", epochs=config.epochs, eta_s=eta, best_epoch=best["epoch"], **row)

    if best["score"] is not None:
        tail.load_state_dict(best["state"])
    else:  # no validation split: keep the last epoch
        best["epoch"] = len(history)
    if config.center:
        v = embed_cached(tail, feats[:, CLEAN], device)
        if config.tta_flip:
            v = F.normalize(v + embed_cached(tail, feats[:, MIRROR], device), dim=1)
        tail.center.copy_(v.mean(0).to(tail.center.device))
    calibration, calibration_note = calibrate_held_out(
        _deployed_vectors(tail, feats, val_idx, config, device),
        [individuals[i] for i in val_idx],
        [sightings[i] for i in val_idx],
    )

    state = {k: v.detach().cpu() for k, v in tail.state_dict().items()}
    weights_sha = state_sha256(state)
    model_id = make_trained_model_id(spec.name, config.input_size, weights_sha, config, base_sha)
    info = {
        "model_id": model_id,
        "format": FORMAT_VERSION,
        "kind": "trained",
        "backbone": spec.name,
        "input_size": config.input_size,
        "dim": int(tail.projection.shape[1]),
        "split_block": tail.split,
        "base_weights_sha256": base_sha,
        "tail_sha256": weights_sha,
        "config": config.to_json(),
        "run_key": run_key,
        "seed": config.seed,
        "data": {
            **data.counts(),
            "sha256": data_hash,
            "skipped": data.skipped,
            "train_individuals": len(train_ids),
            "val_individuals": len(val_ids),
        },
        "metrics": {
            "history": history,
            "best_epoch": best["epoch"],
            "best_val_score": best["score"],
            "val_score_untrained": untrained_score,
        },
        # Stored for the model by `deerid train` (and by `deerid models use` if missing).
        "calibration": calibration,
        "calibration_note": calibration_note,
        "seconds": {"cache": cache_s, "total": time.monotonic() - t_start},
        "device": device.type,
        "deerid_version": deerid.__version__,
        "torch_version": torch.__version__,
    }
    tmp = out_dir / f".{WEIGHTS_FILE}.tmp"
    torch.save(state, tmp)
    tmp.replace(out_dir / WEIGHTS_FILE)
    (out_dir / f".{MODEL_FILE}.tmp").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    (out_dir / f".{MODEL_FILE}.tmp").replace(out_dir / MODEL_FILE)
    ckpt_path.unlink(missing_ok=True)
    if not config.keep_cache and not config.cache_dir:
        shutil.rmtree(cache_dir, ignore_errors=True)
    _emit(
        progress,
        phase="done",
        reused=False,
        model_id=model_id,
        best_epoch=best["epoch"],
        seconds=info["seconds"]["total"],
    )
    return TrainedModel(model_id, out_dir, info)


def _deployed_vectors(
    tail: Tail, feats: torch.Tensor, rows: np.ndarray, config: TrainConfig, device: torch.device
) -> np.ndarray:
    """The vectors the saved model gives these images (as embed.trained computes them)."""
    if len(rows) == 0:
        return np.zeros((0, tail.projection.shape[1]), dtype=np.float32)
    index = torch.from_numpy(rows)
    v = embed_cached(tail, feats[index, CLEAN], device)
    if config.tta_flip:
        v = F.normalize(v + embed_cached(tail, feats[index, MIRROR], device), dim=1)
    return F.normalize(v - tail.center.detach().cpu(), dim=1).numpy()


def _batches(labels: torch.Tensor, config: TrainConfig, g: torch.Generator) -> list[torch.Tensor]:
    n = len(labels)
    if config.loss != "triplet":
        perm = torch.randperm(n, generator=g)
        return [perm[i : i + config.batch_size] for i in range(0, n, config.batch_size)]
    # P individuals x K images each (with repetition for individuals with fewer images).
    by_label: dict[int, torch.Tensor] = {}
    for c in labels.unique().tolist():
        by_label[c] = torch.nonzero(labels == c).flatten()
    classes = torch.tensor(sorted(by_label))
    k = config.triplet_k
    p = max(2, config.batch_size // k)
    order = classes[torch.randperm(len(classes), generator=g)]
    out = []
    for i in range(0, len(order), p):
        rows = []
        for c in order[i : i + p].tolist():
            members = by_label[c]
            pick = torch.randint(len(members), (k,), generator=g)
            rows.append(members[pick])
        if len(rows) >= 2:
            out.append(torch.cat(rows))
    return out


def _pick_views(n: int, y: torch.Tensor, config: TrainConfig, n_ids: int, g: torch.Generator):
    """A random cached view per sample: clean or augmented; with flip, sometimes the mirror."""
    plain = torch.tensor([CLEAN, *list(range(2, 2 + config.n_aug_views))])
    views = plain[torch.randint(len(plain), (n,), generator=g)]
    if config.flip != "none":
        # The mirror is one more view, drawn as often as each of the others.
        mirror = torch.rand(n, generator=g) < 1.0 / (len(plain) + 1)
        views = torch.where(mirror, torch.full_like(views, MIRROR), views)
        if config.flip == "new_class":
            y = torch.where(mirror, y + n_ids, y)
    return views, y
