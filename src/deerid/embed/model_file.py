"""`model.json`: the description beside a model's weights in `<models dir>/<name>/`.

Two kinds of folder hold one:

- a pretrained backbone's saved head (`head.pt`), written by `embed.head`; its record
  has no `kind` key;
- a trained model (`tail.pt`), written by `deerid train` / `deerid adapt`, with
  `"kind": "trained"`.

This module is the only place that knows the file's keys. The JSON on disk is what it
has always been (same keys, sorted, indented), so folders written before this module
still load, and keys it does not know are carried through a rewrite untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from deerid.core.files import atomic_write

MODEL_FILE = "model.json"
WEIGHTS_FILE = "tail.pt"  # a trained model's weights, beside its model.json
FORMAT_VERSION = 1  # of a trained model folder; part of its model id

JsonObject = dict[str, Any]


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Hash of a state dict's names and bytes: what `tail_sha256` records for `tail.pt`."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _Fields:
    """Typed access to a parsed JSON object; what is read is remembered, so the rest
    can be kept as `extra`."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._used: set[str] = set()

    def _take(self, key: str, kinds: tuple[type, ...], required: bool) -> Any:
        self._used.add(key)
        if key not in self._data:
            if required:
                raise KeyError(key)
            return None
        value = self._data[key]
        if value is None and not required:
            return None
        # bool is an int to Python, never a count or a size in this file.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise TypeError(f"{key!r} should be {names}, not {type(value).__name__}")
        return value

    def ignore(self, key: str) -> None:
        self._used.add(key)

    def req_str(self, key: str) -> str:
        return self._take(key, (str,), True)

    def req_int(self, key: str) -> int:
        return self._take(key, (int,), True)

    def req_obj(self, key: str) -> JsonObject:
        return dict(self._take(key, (dict,), True))

    def opt_str(self, key: str) -> str | None:
        return self._take(key, (str,), False)

    def opt_int(self, key: str) -> int | None:
        return self._take(key, (int,), False)

    def opt_obj(self, key: str) -> JsonObject | None:
        value = self._take(key, (dict,), False)
        return None if value is None else dict(value)

    def extra(self) -> JsonObject:
        return {k: v for k, v in self._data.items() if k not in self._used}


def _without_none(d: Mapping[str, Any]) -> JsonObject:
    # An optional key that was absent stays absent when the file is written again.
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class AdaptedBlock:
    """`adapted`: how `deerid adapt` made a trained model from unlabelled crops."""

    input_key: str  # hash of the adapt config and the crops' bytes: a rerun on the same is reused
    config: JsonObject  # AdaptConfig.to_json()
    crops: int
    skipped_unreadable: int
    encounters: int
    clusters: int
    clusters_joining_encounters: int
    largest_cluster_encounters: int
    seconds: JsonObject  # {"cache": s, "total": s}
    # Set by the CLI from the database rows, so a finished run is found before any crop is cut.
    source_key: str | None = None
    extra: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {
            **self.extra,
            **_without_none(
                {
                    "input_key": self.input_key,
                    "config": self.config,
                    "crops": self.crops,
                    "skipped_unreadable": self.skipped_unreadable,
                    "encounters": self.encounters,
                    "clusters": self.clusters,
                    "clusters_joining_encounters": self.clusters_joining_encounters,
                    "largest_cluster_encounters": self.largest_cluster_encounters,
                    "seconds": self.seconds,
                    "source_key": self.source_key,
                }
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AdaptedBlock:
        f = _Fields(data)
        return cls(
            input_key=f.req_str("input_key"),
            config=f.req_obj("config"),
            crops=f.req_int("crops"),
            skipped_unreadable=f.req_int("skipped_unreadable"),
            encounters=f.req_int("encounters"),
            clusters=f.req_int("clusters"),
            clusters_joining_encounters=f.req_int("clusters_joining_encounters"),
            largest_cluster_encounters=f.req_int("largest_cluster_encounters"),
            seconds=f.req_obj("seconds"),
            source_key=f.opt_str("source_key"),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class TrainedModelFile:
    """A trained model: the frozen front of `backbone` (verified by `base_weights_sha256`)
    up to `split_block`, then the trained tail in `tail.pt` (verified by `tail_sha256`)."""

    kind: ClassVar[Literal["trained"]] = "trained"

    model_id: str
    backbone: str
    input_size: int
    dim: int
    split_block: int
    base_weights_sha256: str
    tail_sha256: str
    config: JsonObject  # the TrainConfig it was trained with (TrainConfig.to_json())
    format: int | None = None
    run_key: str | None = None  # recipe + data hash: a rerun on the same is reused
    seed: int | None = None
    data: JsonObject | None = None
    metrics: JsonObject | None = None
    # Written even when null: null says "training measured none", absence "trained before
    # calibration was stored". Readers treat both alike.
    calibration: JsonObject | None = None
    calibration_note: str | None = None
    seconds: JsonObject | None = None
    device: str | None = None
    deerid_version: str | None = None
    torch_version: str | None = None
    adapted: AdaptedBlock | None = None
    extra: JsonObject = field(default_factory=dict)

    @property
    def tta_flip(self) -> bool:
        return bool(self.config.get("tta_flip", False))

    def to_json(self) -> JsonObject:
        return {
            **self.extra,
            **_without_none(
                {
                    "model_id": self.model_id,
                    "format": self.format,
                    "backbone": self.backbone,
                    "input_size": self.input_size,
                    "dim": self.dim,
                    "split_block": self.split_block,
                    "base_weights_sha256": self.base_weights_sha256,
                    "tail_sha256": self.tail_sha256,
                    "config": self.config,
                    "run_key": self.run_key,
                    "seed": self.seed,
                    "data": self.data,
                    "metrics": self.metrics,
                    "calibration_note": self.calibration_note,
                    "seconds": self.seconds,
                    "device": self.device,
                    "deerid_version": self.deerid_version,
                    "torch_version": self.torch_version,
                    "adapted": None if self.adapted is None else self.adapted.to_json(),
                }
            ),
            "kind": self.kind,
            "calibration": self.calibration,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainedModelFile:
        f = _Fields(data)
        f.ignore("kind")  # written from the class, never from the file
        adapted = f.opt_obj("adapted")
        return cls(
            model_id=f.req_str("model_id"),
            backbone=f.req_str("backbone"),
            input_size=f.req_int("input_size"),
            dim=f.req_int("dim"),
            split_block=f.req_int("split_block"),
            base_weights_sha256=f.req_str("base_weights_sha256"),
            tail_sha256=f.req_str("tail_sha256"),
            config=f.req_obj("config"),
            format=f.opt_int("format"),
            run_key=f.opt_str("run_key"),
            seed=f.opt_int("seed"),
            data=f.opt_obj("data"),
            metrics=f.opt_obj("metrics"),
            calibration=f.opt_obj("calibration"),
            calibration_note=f.opt_str("calibration_note"),
            seconds=f.opt_obj("seconds"),
            device=f.opt_str("device"),
            deerid_version=f.opt_str("deerid_version"),
            torch_version=f.opt_str("torch_version"),
            adapted=None if adapted is None else AdaptedBlock.from_json(adapted),
            extra=f.extra(),
        )


@dataclass(frozen=True)
class PretrainedModelFile:
    """A pretrained backbone's saved head: `head.pt` made with the `head` recipe
    (HeadConfig as a dict), verified by `head_sha256`."""

    kind: ClassVar[Literal["pretrained"]] = "pretrained"  # not on disk: the record has no `kind`

    model_id: str
    backbone: str
    head: JsonObject
    head_sha256: str
    input_size: int | None = None
    weights_sha256: str | None = None
    weights_file: str | None = None
    deerid_version: str | None = None
    extra: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {
            **self.extra,
            **_without_none(
                {
                    "model_id": self.model_id,
                    "backbone": self.backbone,
                    "input_size": self.input_size,
                    "weights_sha256": self.weights_sha256,
                    "weights_file": self.weights_file,
                    "deerid_version": self.deerid_version,
                    "head": self.head,
                    "head_sha256": self.head_sha256,
                }
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PretrainedModelFile:
        f = _Fields(data)
        return cls(
            model_id=f.req_str("model_id"),
            backbone=f.req_str("backbone"),
            head=f.req_obj("head"),
            head_sha256=f.req_str("head_sha256"),
            input_size=f.opt_int("input_size"),
            weights_sha256=f.opt_str("weights_sha256"),
            weights_file=f.opt_str("weights_file"),
            deerid_version=f.opt_str("deerid_version"),
            extra=f.extra(),
        )


ModelFile = TrainedModelFile | PretrainedModelFile


def parse_model_file(data: object) -> ModelFile:
    """The typed form of a parsed model.json; ValueError (saying which key) if it is not one."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a model description is a JSON object, not {type(data).__name__}")
    try:
        if data.get("kind") == TrainedModelFile.kind:
            return TrainedModelFile.from_json(data)
        return PretrainedModelFile.from_json(data)
    except KeyError as exc:
        raise ValueError(f"missing key {exc}") from exc
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def load_model_file(folder: Path) -> ModelFile:
    """`folder`'s model.json. OSError (FileNotFoundError when there is none) if it cannot
    be read, ValueError if it is damaged or not a model description."""
    return parse_model_file(json.loads((Path(folder) / MODEL_FILE).read_text()))


def read_model_file(folder: Path) -> ModelFile | None:
    """`folder`'s model.json, or None when it is missing, unreadable or damaged."""
    try:
        return load_model_file(folder)
    except (OSError, ValueError):
        return None


def write_model_file(folder: Path, model: ModelFile) -> Path:
    """Write `folder`/model.json atomically: a reader (or a crash mid-write) sees the old
    file or the new one, never half of one. Returns its path."""
    target = Path(folder) / MODEL_FILE
    atomic_write(target, json.dumps(model.to_json(), indent=2, sort_keys=True) + "\n")
    return target
