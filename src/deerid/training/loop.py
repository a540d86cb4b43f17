"""`train()`: fine-tune the last blocks of a backbone + a 512-d head with metric learning.

Recipe (measured in docs/training.md): freeze the stem and early blocks and cache
their output for the clean view, its mirror and a few augmented views of each image;
train the last `trainable_blocks` blocks, the head conv and the projection (initialised
to the shipped orthogonal head) with ArcFace; pick the epoch by retrieval on a held-out
split of *individuals*; centre the output on the training mean.

`train()` checks the data, returns a finished model of the same recipe and data as is,
loads the network and hands the run to a `Trainer` (cache, epochs, checkpoints, the
model folder).
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
from deerid.embed.backbones import BackboneSpec, get_backbone_spec, load_network
from deerid.embed.model_file import (
    FORMAT_VERSION,
    WEIGHTS_FILE,
    TrainedModelFile,
    parse_model_file,
    read_model_file,
    state_sha256,
    write_model_file,
)
from deerid.embed.tail import Tail, n_blocks, resolve_device, split_network
from deerid.embed.weights import resolve_weights
from deerid.evaluation.retrieval import retrieval_metrics
from deerid.training.augment import AugmentConfig
from deerid.training.cache import CLEAN, MIRROR, build_cache, cache_key
from deerid.training.calibration import calibrate_held_out
from deerid.training.data import CheckedData, Sample, check_samples, split_individuals
from deerid.training.losses import SubCenterArcFace, batch_hard_triplet
from deerid.training.progress import ProgressCallback, emit

CHECKPOINT_FILE = "checkpoint.pt"


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
    info: dict[str, Any]  # model.json as written (the CLI prints it and may add to it)

    @classmethod
    def from_file(cls, model_dir: Path, model_file: TrainedModelFile) -> TrainedModel:
        return cls(model_file.model_id, model_dir, model_file.to_json())

    def model_file(self) -> TrainedModelFile:
        parsed = parse_model_file(self.info)
        if not isinstance(parsed, TrainedModelFile):
            raise ValueError(f"{self.model_dir} does not describe a trained model")
        return parsed


def run_key_of(config: TrainConfig, data_hash: str) -> str:
    """What a finished model and a checkpoint are matched on: the recipe and the data."""
    return hashlib.sha256(f"{config.recipe_hash()}:{data_hash}".encode()).hexdigest()


def make_trained_model_id(
    backbone: str, input_size: int, weights_sha: str, config: TrainConfig, base_sha: str
) -> str:
    payload = json.dumps(
        {"tail": weights_sha, "base": base_sha, "recipe": config.recipe_hash(), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return f"{backbone}-{input_size}-ft-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


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


@dataclass
class FrozenSplit:
    """A backbone cut for training: the frozen trunk (its features are cached) and the tail that
    trains, on `device`; `split` is the trunk's block count, `base_sha` the weights they came from."""

    spec: BackboneSpec
    trunk: torch.nn.Module
    tail: Tail
    split: int
    base_sha: str
    device: torch.device

    @classmethod
    def load(cls, config: TrainConfig) -> FrozenSplit:
        device = resolve_device(config.device)
        spec = get_backbone_spec(config.backbone)
        weights = resolve_weights(spec.weights)
        network = load_network(spec, weights.path)
        split = n_blocks(network) - config.trainable_blocks
        trunk, tail = split_network(network, config.trainable_blocks)
        return cls(spec, trunk.to(device), tail.to(device), split, weights.sha256, device)

    def features(
        self, data: CheckedData, config: TrainConfig, cache_dir: Path, progress: ProgressCallback | None
    ) -> tuple[torch.Tensor, float]:
        """`cached_features` of every view of `data`, reporting "cache" events; (features, seconds)."""
        t0 = time.monotonic()
        feats = cached_features(
            [s[0] for s in data.samples],
            data.sha256,
            self.trunk,
            self.spec,
            config,
            split=self.split,
            cache_dir=cache_dir,
            device=self.device,
            progress=lambda done, total: emit(
                progress, phase="cache", done=done, total=total, seconds=time.monotonic() - t0
            ),
        )
        return feats, time.monotonic() - t0


def train(
    samples: list[Sample],
    config: TrainConfig,
    out_dir: Path,
    *,
    progress: ProgressCallback | None = None,
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
    run_key = run_key_of(config, data.combined_hash())

    if resume and (out_dir / WEIGHTS_FILE).is_file():
        # A damaged description reads as None: train again.
        done = read_model_file(out_dir)
        if isinstance(done, TrainedModelFile) and done.run_key == run_key:
            emit(progress, phase="done", reused=True, model_id=done.model_id)
            return TrainedModel.from_file(out_dir, done)

    frozen = FrozenSplit.load(config)

    # Seeded before anything draws from the global generator (the cache, the epochs).
    torch.manual_seed(config.seed)
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        trainer = Trainer.prepare(data, config, out_dir, frozen, progress=progress, started=t_start)
        if resume:
            trainer.load_checkpoint()
        return trainer.fit()
    finally:
        torch.use_deterministic_algorithms(prev_det)


@dataclass(frozen=True)
class TrainingSet:
    """The cached trunk features of every image, and which rows train and which choose the epoch."""

    feats: torch.Tensor  # (images, views, C, h, w); views as in training.cache
    individuals: list[str]
    sightings: list[str]
    train_ids: list[str]
    val_ids: list[str]
    train_idx: np.ndarray  # rows of the training individuals
    val_idx: np.ndarray  # rows of the validation individuals
    labels: torch.Tensor  # class (index into train_ids) of each train_idx row

    @classmethod
    def split(cls, data: CheckedData, feats: torch.Tensor, config: TrainConfig) -> TrainingSet:
        individuals = [s[1] for s in data.samples]
        train_ids, val_ids = split_individuals(sorted(set(individuals)), config.val_fraction, config.seed)
        label_of = {ind: i for i, ind in enumerate(train_ids)}
        train_idx = np.array([i for i, ind in enumerate(individuals) if ind in label_of])
        return cls(
            feats=feats,
            individuals=individuals,
            sightings=[s[2] for s in data.samples],
            train_ids=train_ids,
            val_ids=val_ids,
            train_idx=train_idx,
            val_idx=np.array([i for i, ind in enumerate(individuals) if ind not in label_of]),
            labels=torch.tensor([label_of[individuals[i]] for i in train_idx]),
        )

    def val_labels(self) -> tuple[list[str], list[str]]:
        """(individual, sighting) of each validation row."""
        return [self.individuals[i] for i in self.val_idx], [self.sightings[i] for i in self.val_idx]


@dataclass
class BestEpoch:
    score: float | None  # None: no validation split, so no epoch can be preferred
    epoch: int  # 0 = untrained
    state: dict[str, torch.Tensor]  # the tail's weights after that epoch

    def to_checkpoint(self) -> dict[str, Any]:
        return {"score": self.score, "epoch": self.epoch, "state": self.state}

    @classmethod
    def from_checkpoint(cls, d: dict[str, Any]) -> BestEpoch:
        return cls(d["score"], d["epoch"], d["state"])


@dataclass(eq=False)
class Trainer:
    """One training run over cached trunk features, shaped like wildlife-tools' BasicTrainer:
    built with its collaborators, then `load_checkpoint()` (to resume), `fit()` = `run_epoch()`
    per epoch with `save_checkpoint()` after each, and `finish()` to write the model folder.

    Progress goes to `progress` as events (see training.progress).
    """

    config: TrainConfig
    out_dir: Path
    tail: Tail
    dataset: TrainingSet
    data: CheckedData
    backbone: str
    base_sha: str  # sha256 of the base weights the trunk and the tail's start came from
    device: torch.device
    cache_dir: Path
    progress: ProgressCallback | None = None
    cache_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    criterion: SubCenterArcFace = field(init=False)
    opt: torch.optim.AdamW = field(init=False)
    sched: torch.optim.lr_scheduler.LambdaLR = field(init=False)
    run_key: str = field(init=False)
    epoch: int = field(init=False, default=0)  # epochs done
    history: list[dict[str, Any]] = field(init=False, default_factory=list)
    epoch_times: list[float] = field(init=False, default_factory=list)
    untrained_score: float | None = field(init=False, default=None)
    best: BestEpoch = field(init=False)
    # Top-1 and mAP of the last validate(), reported in each epoch's row.
    last_val: dict[str, float | None] = field(
        init=False, default_factory=lambda: {"val_top1": None, "val_mAP": None}
    )

    @classmethod
    def prepare(
        cls,
        data: CheckedData,
        config: TrainConfig,
        out_dir: Path,
        frozen: FrozenSplit,
        *,
        progress: ProgressCallback | None = None,
        started: float | None = None,
    ) -> Trainer:
        """Cache the trunk's features of every view of `data` (or read them back) and build the trainer."""
        out_dir.mkdir(parents=True, exist_ok=True)
        cache_dir = Path(config.cache_dir) if config.cache_dir else out_dir / "cache"
        feats, cache_seconds = frozen.features(data, config, cache_dir, progress)
        return cls(
            config=config,
            out_dir=out_dir,
            tail=frozen.tail,
            dataset=TrainingSet.split(data, feats, config),
            data=data,
            backbone=frozen.spec.name,
            base_sha=frozen.base_sha,
            device=frozen.device,
            cache_dir=cache_dir,
            progress=progress,
            cache_seconds=cache_seconds,
            started=time.monotonic() if started is None else started,
        )

    def __post_init__(self) -> None:
        config, tail, ds, device = self.config, self.tail, self.dataset, self.device
        self.run_key = run_key_of(config, self.data.combined_hash())
        n_classes = len(ds.train_ids) * (2 if config.flip == "new_class" else 1)
        self.criterion = SubCenterArcFace(
            tail.projection.shape[1],
            n_classes,
            k=config.subcenters,
            scale=config.arcface_scale,
            margin=config.arcface_margin,
            label_smoothing=config.label_smoothing,
            generator=torch.Generator().manual_seed(config.seed),
        ).to(device)
        if config.loss == "arcface":
            v0 = embed_cached(tail, ds.feats[ds.train_idx, CLEAN], device)
            init_v, init_l = v0, ds.labels
            if config.flip == "new_class":
                vm = embed_cached(tail, ds.feats[ds.train_idx, MIRROR], device)
                init_v = torch.cat([v0, vm])
                init_l = torch.cat([ds.labels, ds.labels + len(ds.train_ids)])
            self.criterion.init_from(init_v.to(device), init_l.to(device))

        tail_params = [p for n, p in tail.named_parameters() if n != "projection"]
        groups = [
            {"params": tail_params, "lr": config.backbone_lr},
            {"params": [tail.projection], "lr": config.lr, "weight_decay": 0.0},
        ]
        if config.loss == "arcface":
            groups.append({"params": list(self.criterion.parameters()), "lr": config.lr, "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        total_steps = max(1, math.ceil(len(ds.train_idx) / config.batch_size)) * config.epochs
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt,
            lambda step: 0.5 * (1 + math.cos(math.pi * min(step / max(1, total_steps), 1.0))),
        )
        # The untrained tail is the score to beat: an epoch is kept only if it does better.
        self.untrained_score = self.validate()
        self.best = BestEpoch(self.untrained_score, 0, copy.deepcopy(tail.state_dict()))

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    def validate(self) -> float | None:
        """Selection score on the validation individuals: top-1 + mAP (mAP steadies a noisy top-1)."""
        ds = self.dataset
        self.last_val = {"val_top1": None, "val_mAP": None}
        if len(ds.val_idx) == 0:
            return None
        v = embed_cached(self.tail, ds.feats[ds.val_idx, CLEAN], self.device).numpy()
        m = retrieval_metrics(v, *ds.val_labels())
        if not m["n_queries"]:
            return None
        self.last_val = {"val_top1": float(m["top1"]), "val_mAP": float(m["mAP"])}
        return float(m["top1"] + m["mAP"])

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train epoch `epoch` (0-based), validate, keep it if best; its row of the history."""
        config, ds, device = self.config, self.dataset, self.device
        te = time.monotonic()
        self.tail.train()
        # Per-epoch generator: a resumed run draws the same batches as an uninterrupted one.
        g = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        total_loss, n_seen = 0.0, 0
        for rows in _batches(ds.labels, config, g):
            idx = ds.train_idx[rows.numpy()]
            views, y = _pick_views(len(rows), ds.labels[rows], config, len(ds.train_ids), g)
            x = ds.feats[torch.from_numpy(idx), views].to(device).float()
            y = y.to(device)
            emb = self.tail.features(x)
            if config.loss == "arcface":
                loss = self.criterion(emb, y)
            else:
                loss = batch_hard_triplet(emb, y, config.triplet_margin)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            total_loss += float(loss.detach()) * len(rows)
            n_seen += len(rows)
        score = self.validate()
        if score is not None and (self.best.score is None or score > self.best.score):
            self.best = BestEpoch(score, epoch + 1, copy.deepcopy(self.tail.state_dict()))
        seconds = time.monotonic() - te
        self.epoch_times.append(seconds)
        row = {
            "epoch": epoch + 1,
            "loss": total_loss / max(n_seen, 1),
            "val_score": score,
            **self.last_val,
            "seconds": seconds,
        }
        self.history.append(row)
        self.epoch = epoch + 1
        return row

    def fit(self) -> TrainedModel:
        """Run the remaining epochs (stopping after `patience` without a better one), then `finish()`."""
        config = self.config
        for epoch in range(self.epoch, config.epochs):
            if self.best.score is not None and epoch - self.best.epoch > config.patience:
                break
            row = self.run_epoch(epoch)
            # Saved before the event: a run killed from its progress callback resumes after this epoch.
            self.save_checkpoint()
            eta = float(np.mean(self.epoch_times)) * (config.epochs - epoch - 1)
            emit(
                self.progress,
                phase="epoch",
                epochs=config.epochs,
                eta_s=eta,
                best_epoch=self.best.epoch,
                **row,
            )
        return self.finish()

    def save_checkpoint(self) -> None:
        """Everything needed to continue after `self.epoch`, written atomically."""
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(
            {
                "run_key": self.run_key,
                "epoch": self.epoch,
                "tail": self.tail.state_dict(),
                "criterion": self.criterion.state_dict(),
                "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(),
                "history": self.history,
                "best": self.best.to_checkpoint(),
            },
            tmp,
        )
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        """Continue from the checkpoint of an interrupted run with the same recipe and data;
        False (and nothing changed) when there is none, or it is unreadable or another run's."""
        if not self.checkpoint_path.is_file():
            return False
        try:
            ck = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        except Exception:  # a checkpoint cut off by the kill: start over
            return False
        if not ck or ck.get("run_key") != self.run_key:
            return False
        self.tail.load_state_dict(ck["tail"])
        self.criterion.load_state_dict(ck["criterion"])
        self.opt.load_state_dict(ck["opt"])
        self.sched.load_state_dict(ck["sched"])
        self.epoch, self.history = ck["epoch"], ck["history"]
        self.best = BestEpoch.from_checkpoint(ck["best"])
        self.epoch_times = [h["seconds"] for h in self.history]
        emit(self.progress, phase="resume", epoch=self.epoch)
        return True

    def finish(self) -> TrainedModel:
        """Keep the best epoch, centre and calibrate, write tail.pt and model.json, clean up."""
        config, tail, ds, device = self.config, self.tail, self.dataset, self.device
        best = self.best
        if best.score is not None:
            tail.load_state_dict(best.state)
        else:  # no validation split: keep the last epoch
            best.epoch = len(self.history)
        if config.center:
            v = embed_cached(tail, ds.feats[:, CLEAN], device)
            if config.tta_flip:
                v = F.normalize(v + embed_cached(tail, ds.feats[:, MIRROR], device), dim=1)
            tail.center.copy_(v.mean(0).to(tail.center.device))
        calibration, calibration_note = calibrate_held_out(
            _deployed_vectors(tail, ds.feats, ds.val_idx, config, device), *ds.val_labels()
        )

        state = {k: v.detach().cpu() for k, v in tail.state_dict().items()}
        weights_sha = state_sha256(state)
        model_id = make_trained_model_id(self.backbone, config.input_size, weights_sha, config, self.base_sha)
        model_file = TrainedModelFile(
            model_id=model_id,
            format=FORMAT_VERSION,
            backbone=self.backbone,
            input_size=config.input_size,
            dim=int(tail.projection.shape[1]),
            split_block=tail.split,
            base_weights_sha256=self.base_sha,
            tail_sha256=weights_sha,
            config=config.to_json(),
            run_key=self.run_key,
            seed=config.seed,
            data={
                **self.data.counts(),
                "sha256": self.data.combined_hash(),
                "skipped": self.data.skipped,
                "train_individuals": len(ds.train_ids),
                "val_individuals": len(ds.val_ids),
            },
            metrics={
                "history": self.history,
                "best_epoch": best.epoch,
                "best_val_score": best.score,
                "val_score_untrained": self.untrained_score,
            },
            # Stored for the model by `deerid train` (and by `deerid models use` if missing).
            calibration=calibration,
            calibration_note=calibration_note,
            seconds={"cache": self.cache_seconds, "total": time.monotonic() - self.started},
            device=device.type,
            deerid_version=deerid.__version__,
            torch_version=torch.__version__,
        )
        tmp = self.out_dir / f".{WEIGHTS_FILE}.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out_dir / WEIGHTS_FILE)
        # model.json last: its presence is what says the folder holds a finished model.
        write_model_file(self.out_dir, model_file)
        self.checkpoint_path.unlink(missing_ok=True)
        if not config.keep_cache and not config.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
        model = TrainedModel.from_file(self.out_dir, model_file)
        emit(
            self.progress,
            phase="done",
            reused=False,
            model_id=model_id,
            best_epoch=best.epoch,
            seconds=model.info["seconds"]["total"],
        )
        return model


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


def _pick_views(
    n: int, y: torch.Tensor, config: TrainConfig, n_ids: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
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
