"""Deterministic embedding head: pool the backbone's feature map, project to 512-d, L2-normalise.

Nothing here is learnt from data (the identity data we evaluate on may not be
shipped in a model), so the projection comes either from a seed or from the
published ImageNet classifier. It is generated once, saved under
`models_dir/<model_id>/` and loaded from there afterwards: a regenerated
projection could differ in the last bits on another LAPACK build, and stored
vectors must stay comparable with new ones for the life of a database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from deerid.embed.model_file import (
    MODEL_FILE,
    ModelFile,
    PretrainedModelFile,
    load_model_file,
    write_model_file,
)

EMBEDDING_DIM = 512
_HEAD_FILE = "head.pt"


@dataclass(frozen=True)
class HeadConfig:
    """Recipe of a head; its hash is part of the model id."""

    in_dim: int
    out_dim: int = EMBEDDING_DIM
    pooling: Literal["avg", "gem"] = "gem"
    gem_p: float = 3.0
    projection: Literal["orthogonal", "fc_svd"] = "orthogonal"
    seed: int = 0
    version: int = 1

    def recipe_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def pool(feature_map: torch.Tensor, config: HeadConfig) -> torch.Tensor:
    """(n, c, h, w) → (n, c). GeM with p=3 leans towards the strongest local
    responses (a stripe, a scar) without the noise of max pooling."""
    if config.pooling == "avg":
        return feature_map.mean(dim=(2, 3))
    p = config.gem_p
    return feature_map.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def build_projection(config: HeadConfig, classifier_weight: torch.Tensor | None = None) -> torch.Tensor:
    """(in_dim, out_dim) matrix with orthonormal columns, computed in float64 on the CPU.

    orthogonal: QR of a seeded Gaussian matrix; by Johnson–Lindenstrauss it
    keeps cosine geometry of the pooled features nearly intact.
    fc_svd: top right singular vectors of the ImageNet classifier weight, the
    feature directions the published classifier uses most.
    """
    if config.projection == "orthogonal":
        gen = torch.Generator().manual_seed(config.seed)
        gaussian = torch.randn(config.in_dim, config.out_dim, generator=gen, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        # QR's column signs depend on the LAPACK build; fix them so the result does not.
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    elif config.projection == "fc_svd":
        if classifier_weight is None:
            raise ValueError("fc_svd projection needs the backbone's classifier weight")
        _, _, vh = torch.linalg.svd(classifier_weight.detach().cpu().double(), full_matrices=False)
        q = vh[: config.out_dim].T
        # Singular vectors are defined up to sign: make each column's largest entry positive.
        idx = q.abs().argmax(dim=0)
        q = q * torch.sign(q[idx, torch.arange(q.shape[1])]).unsqueeze(0)
    else:
        raise ValueError(f"unknown projection {config.projection!r}")
    return q.to(torch.float32).contiguous()


class EmbeddingHead(nn.Module):
    projection: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, config: HeadConfig, projection: torch.Tensor) -> None:
        super().__init__()
        if tuple(projection.shape) != (config.in_dim, config.out_dim):
            raise ValueError(
                f"projection shape {tuple(projection.shape)} != ({config.in_dim}, {config.out_dim})"
            )
        self.config = config
        self.register_buffer("projection", projection)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return F.normalize(pool(feature_map, self.config) @ self.projection, dim=1)


def tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def load_or_create_head(
    model_dir: Path,
    config: HeadConfig,
    classifier_weight: torch.Tensor | None,
    model_info: Mapping[str, Any],
) -> EmbeddingHead:
    """Load the head saved in `model_dir`, or generate and save it there first.

    `model_info` (model id, backbone, weights hash, ...) is written beside the
    head so a person can tell what a models folder holds.
    """
    if (model_dir / MODEL_FILE).is_file():
        return _load(model_dir, config)
    projection = build_projection(config, classifier_weight)
    _save(model_dir, config, projection, model_info)
    # Another process may have won the race to save; whatever is on disk is canonical.
    return _load(model_dir, config)


def _load(model_dir: Path, config: HeadConfig) -> EmbeddingHead:
    try:
        saved: ModelFile | None = load_model_file(model_dir)
    except json.JSONDecodeError:
        raise
    except ValueError:
        saved = None  # readable but not a head record: the recipe check below says so
    if not isinstance(saved, PretrainedModelFile) or saved.head != json.loads(config.recipe_json()):
        saved_head = saved.head if isinstance(saved, PretrainedModelFile) else None
        raise RuntimeError(
            f"{model_dir} holds a head with recipe {saved_head}, not {config.recipe_json()}; "
            "the models folder is inconsistent — move it away rather than mixing vectors."
        )
    projection = torch.load(model_dir / _HEAD_FILE, map_location="cpu", weights_only=True)["projection"]
    if tensor_sha256(projection) != saved.head_sha256:
        raise RuntimeError(
            f"{model_dir / _HEAD_FILE} does not match the hash recorded in {MODEL_FILE}; "
            "the file is damaged. Restore it from a backup: regenerating it could change every vector."
        )
    return EmbeddingHead(config, projection)


def _save(model_dir: Path, config: HeadConfig, projection: torch.Tensor, info: Mapping[str, Any]) -> None:
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build the folder aside and rename it into place, so a reader never sees half a model.
    tmp = model_dir.parent / f".{model_dir.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        torch.save({"projection": projection}, tmp / _HEAD_FILE)
        record = PretrainedModelFile.from_json(
            {**info, "head": asdict(config), "head_sha256": tensor_sha256(projection)}
        )
        write_model_file(tmp, record)
        try:
            os.rename(tmp, model_dir)
        except OSError:
            if not (model_dir / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
