"""Crops in, L2-normalised 512-d vectors out: the contract the pipeline codes against."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np
import torch

import deerid
from deerid.core.config import Settings
from deerid.embed.backbones import BackboneSpec, available_backbones, get_backbone_spec, load_network
from deerid.embed.cache import ModelCache
from deerid.embed.head import EmbeddingHead, HeadConfig, load_or_create_head
from deerid.embed.onnx_runtime import OnnxEmbedder, OnnxRuntimeError
from deerid.embed.preprocess import BatchedEmbedder
from deerid.embed.weights import ResolvedWeights, resolve_weights

__all__ = ["Embedder", "available_backbones", "get_embedder", "make_model_id"]

log = logging.getLogger(__name__)


def make_model_id(backbone: str, input_size: int, weights_sha256: str, head: HeadConfig) -> str:
    """`<backbone>-<input size>-<12 hex>`; the hex covers the exact weights and head recipe,
    so any change that alters vectors changes the id."""
    payload = json.dumps(
        {"weights_sha256": weights_sha256, "head": json.loads(head.recipe_json())}, sort_keys=True
    )
    return f"{backbone}-{input_size}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def default_head_config(spec: BackboneSpec) -> HeadConfig:
    """The shipped head: GeM pooling + seeded orthogonal projection (see docs/backbones.md)."""
    return HeadConfig(in_dim=spec.feature_dim)


class Embedder(BatchedEmbedder):
    """One backbone + head on one device. `embed` is safe to call from many threads."""

    def __init__(
        self,
        spec: BackboneSpec,
        weights: ResolvedWeights,
        *,
        models_dir: Path,
        device: str = "cpu",
        input_size: int | None = None,
        batch_size: int = 16,
        head_config: HeadConfig | None = None,
    ) -> None:
        self.backbone = spec.name
        self.input_size = input_size or spec.native_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.weights = weights
        self._spec = spec
        head_config = head_config or default_head_config(spec)
        self.model_id = make_model_id(spec.name, self.input_size, weights.sha256, head_config)
        self.dim = head_config.out_dim

        network = load_network(spec, weights.path)
        self._head: EmbeddingHead = load_or_create_head(
            models_dir / self.model_id,
            head_config,
            network.classifier_weight,
            {
                "model_id": self.model_id,
                "backbone": spec.name,
                "input_size": self.input_size,
                "weights_sha256": weights.sha256,
                "weights_file": weights.path.name,
                "deerid_version": deerid.__version__,
            },
        )
        self._network = network.eval().to(self.device)
        self._head = self._head.eval().to(self.device)
        self._lock = threading.Lock()

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        # One lock per model: PyTorch modules are not documented thread-safe, and
        # concurrent forwards on 2 cores would only fight over the same threads.
        with self._lock, torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            vectors = self._head(self._network.forward_features(x))
            return vectors.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"Embedder(model_id={self.model_id!r}, device={self.device.type!r})"


def get_embedder(settings: Settings, cache: ModelCache | None = None) -> Embedder | OnnxEmbedder:
    """The Embedder for the settings' backbone, device, weights and runtime (from `cache` when
    it holds one; the runtime context passes its own).

    ONNX Runtime runs the same network and head as PyTorch, with the same model id
    (see `deerid.embed.onnx_runtime`), several times as fast on the CPU (docs/scale.md).
    `runtime="auto"` (the default) uses it whenever the network runs on the CPU and
    falls back to PyTorch with one log line when it cannot (onnxruntime missing, export
    or load failed); `runtime="onnx"` insists (CPU only: with `device="auto"` that means
    the CPU) and `runtime="torch"` never uses it.
    """
    spec = get_backbone_spec(settings.backbone)
    explicit_onnx = settings.runtime == "onnx" and settings.device == "auto"
    device = "cpu" if explicit_onnx else settings.resolved_device
    use_onnx = settings.runtime == "onnx" or (settings.runtime == "auto" and device == "cpu")
    input_size = settings.embed_input_size or spec.native_size
    key = (
        "pretrained",
        spec.name,
        device,
        str(settings.weights) if settings.weights else None,
        settings.weights_sha256,
        input_size,
        settings.embed_batch_size,
        str(settings.models_dir),
        settings.runtime,
    )

    def build() -> Embedder | OnnxEmbedder:
        weights = resolve_weights(
            spec.weights,
            explicit=settings.weights,
            expected_sha256=settings.weights_sha256,
            allow_download=settings.allow_download,
        )
        embedder: Embedder | OnnxEmbedder = Embedder(
            spec,
            weights,
            models_dir=settings.models_dir,
            device=device,
            input_size=input_size,
            batch_size=settings.embed_batch_size,
        )
        if use_onnx:
            try:
                embedder = OnnxEmbedder(embedder, models_dir=settings.models_dir)
            except OnnxRuntimeError as exc:
                if settings.runtime == "onnx":
                    raise
                # Same vectors and model id either way, so PyTorch is a safe (slower) fallback.
                log.warning("embedding %s on PyTorch, not ONNX Runtime: %s", embedder.model_id, exc)
        return embedder

    return build() if cache is None else cache.get(key, build)
