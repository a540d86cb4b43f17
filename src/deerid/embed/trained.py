"""Load a model written by `deerid train` (or `deerid adapt`) as an Embedder-compatible object.

The folder holds `model.json` (recipe, base weights hash, model id) and `tail.pt`
(the trained last blocks, head conv, projection and centre). The frozen front of the
network comes from the published base weights, verified by sha256. Inference is the
training's eval path: squash-resize to the input size, network, GeM, projection,
L2-normalise, subtract the training mean (when the model was trained with it),
L2-normalise; optionally averaged with the mirrored image (`tta_flip`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deerid.embed.backbones import get_backbone_spec, load_network
from deerid.embed.model_file import MODEL_FILE, WEIGHTS_FILE, TrainedModelFile, load_model_file, state_sha256
from deerid.embed.preprocess import BatchedEmbedder
from deerid.embed.tail import Tail, Trunk, n_blocks, resolve_device, split_network
from deerid.embed.weights import resolve_weights
from deerid.errors import Unavailable


class TrainedModelError(Unavailable):
    """A trained model folder is missing, incomplete or damaged; the message says which."""


class TrainedEmbedder(BatchedEmbedder):
    """Same contract as `deerid.embed.embedder.Embedder`: `.model_id`, `.dim`, `.backbone`,
    `.input_size`, `.batch_size`, `.device`, `.embed(images) -> float32 (n, dim)` L2-normalised."""

    def __init__(
        self,
        model_dir: Path,
        model_file: TrainedModelFile,
        trunk: Trunk,
        tail: Tail,
        device: torch.device,
        batch_size: int,
    ) -> None:
        self.model_dir = model_dir
        self.model_file = model_file
        self.model_id: str = model_file.model_id
        self.backbone: str = model_file.backbone
        self.input_size: int = model_file.input_size
        self.dim: int = model_file.dim
        self.batch_size = batch_size
        self.device = device
        self.tta_flip = model_file.tta_flip
        self._spec = get_backbone_spec(self.backbone)
        self._trunk = trunk.to(device).eval()
        self._tail = tail.to(device).eval()
        self._lock = threading.Lock()

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        with self._lock, torch.inference_mode():
            x = batch.to(self.device)
            v = self._tail(self._trunk(x))
            if self.tta_flip:
                v = F.normalize(v + self._tail(self._trunk(torch.flip(x, dims=[3]))), dim=1)
            v = F.normalize(v - self._tail.center, dim=1)
            return v.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TrainedEmbedder(model_id={self.model_id!r}, device={self.device.type!r})"


def read_trained_model_file(model_dir: Path) -> TrainedModelFile:
    """The model.json of a trained model folder; TrainedModelError saying what is wrong."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not model_dir.is_dir():
        raise TrainedModelError(f"trained model folder not found: {model_dir}")
    if not path.is_file():
        raise TrainedModelError(
            f"{model_dir} has no {MODEL_FILE}: not a trained model folder (or training did not finish)"
        )
    try:
        model_file = load_model_file(model_dir)
    except ValueError as exc:
        raise TrainedModelError(f"{path} is damaged or not a trained model description: {exc}") from exc
    if not isinstance(model_file, TrainedModelFile):
        raise TrainedModelError(f"{path} does not describe a trained model")
    return model_file


def load_trained_embedder(model_dir: Path, device: str = "cpu", batch_size: int = 16) -> TrainedEmbedder:
    """Load `model_dir` (written by `deerid train`); every file checked by hash."""
    model_dir = Path(model_dir)
    model_file = read_trained_model_file(model_dir)
    spec = get_backbone_spec(model_file.backbone)
    weights = resolve_weights(spec.weights, expected_sha256=model_file.base_weights_sha256)
    network = load_network(spec, weights.path)
    # n_blocks refuses, in words, a backbone training never writes (a hand-edited model.json).
    trainable = n_blocks(network) - model_file.split_block
    trunk, tail = split_network(network, trainable)
    try:
        state = torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainedModelError(f"{model_dir / WEIGHTS_FILE} is missing; retrain or restore it") from exc
    except Exception as exc:
        raise TrainedModelError(f"{model_dir / WEIGHTS_FILE} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or state_sha256(state) != model_file.tail_sha256:
        raise TrainedModelError(
            f"{model_dir / WEIGHTS_FILE} does not match the hash in {MODEL_FILE}: the file is damaged. "
            "Restore it or retrain; a different file would silently change every vector."
        )
    tail.load_state_dict(state, strict=True)
    return TrainedEmbedder(model_dir, model_file, trunk, tail, resolve_device(device), batch_size)
