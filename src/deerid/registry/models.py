"""Which model embeds: the pretrained backbones and the models trained with `deerid train`.

The active model is, in order: DEERID_MODEL, the choice saved by
`deerid models use`, DEERID_BACKBONE. Trained models live in
`<data dir>/models/<name>/` with a `model.json` that records their model id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deerid.core.config import Settings
from deerid.core.files import atomic_write
from deerid.embed.cache import ModelCache
from deerid.embed.embedder import available_backbones, get_embedder
from deerid.embed.model_file import (
    MODEL_FILE,
    ModelFile,
    PretrainedModelFile,
    TrainedModelFile,
    read_model_file,
)
from deerid.embed.protocol import EmbedderLike
from deerid.errors import NotFound


class UnknownModelError(NotFound):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what `deerid models use` takes: a backbone name or a trained model's folder name
    kind: Literal["pretrained", "trained"]
    model_id: str | None  # None for a pretrained backbone not used yet (its id needs its weights)
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _model_files(settings: Settings) -> list[tuple[Path, ModelFile]]:
    """Every readable model.json under the models dir, by folder name; damaged ones are skipped."""
    if not settings.models_dir.is_dir():
        return []
    found = []
    for model_json in sorted(settings.models_dir.glob(f"*/{MODEL_FILE}")):
        model_file = read_model_file(model_json.parent)
        if model_file is not None:
            found.append((model_json.parent, model_file))
    return found


def trained_models(settings: Settings) -> list[ModelEntry]:
    return [
        ModelEntry(folder.name, "trained", model_file.model_id, folder, model_file.to_json())
        for folder, model_file in _model_files(settings)
        if isinstance(model_file, TrainedModelFile)
    ]


def _pretrained_ids(settings: Settings) -> dict[str, str]:
    """Model ids of pretrained backbones already used here (their heads are saved)."""
    ids: dict[str, str] = {}
    for _, model_file in _model_files(settings):
        if isinstance(model_file, PretrainedModelFile):
            ids.setdefault(model_file.backbone, model_file.model_id)
    return ids


def list_models(settings: Settings) -> list[ModelEntry]:
    ids = _pretrained_ids(settings)
    pretrained = [ModelEntry(name, "pretrained", ids.get(name)) for name in available_backbones()]
    return pretrained + trained_models(settings)


def find_model(settings: Settings, key: str) -> ModelEntry:
    """A model by backbone name, trained model name, or model id."""
    for entry in list_models(settings):
        if key in (entry.name, entry.model_id):
            return entry
    names = ", ".join(e.name for e in list_models(settings))
    raise UnknownModelError(f"no model {key!r}; available: {names}")


def active_model_name(settings: Settings) -> tuple[str, str]:
    """(name, where the choice comes from)."""
    if settings.model:
        return settings.model, "DEERID_MODEL"
    saved = _read_json(settings.paths.active_model)
    if saved and isinstance(saved.get("model"), str):
        return saved["model"], "deerid models use"
    return settings.backbone, "DEERID_BACKBONE" if "backbone" in settings.model_fields_set else "default"


def use_model(settings: Settings, key: str) -> ModelEntry:
    entry = find_model(settings, key)
    atomic_write(settings.paths.active_model, json.dumps({"model": entry.name}))
    return entry


def embedder_for(settings: Settings, key: str, cache: ModelCache | None = None) -> EmbedderLike:
    """The embedder of model `key` (backbone name, trained model name or model id), from `cache`
    when given (the runtime context's), else freshly loaded."""
    if key in available_backbones():
        return get_embedder(settings.model_copy(update={"backbone": key}), cache)
    entry = find_model(settings, key)
    if entry.kind == "pretrained":
        return get_embedder(settings.model_copy(update={"backbone": entry.name}), cache)
    from deerid.embed.trained import load_trained_embedder

    assert entry.path is not None
    path = entry.path

    def build() -> EmbedderLike:
        return load_trained_embedder(path, settings.resolved_device, settings.embed_batch_size)

    if cache is None:
        return build()
    return cache.get(("trained", str(path), settings.resolved_device, settings.embed_batch_size), build)


def active_embedder(settings: Settings, cache: ModelCache | None = None) -> EmbedderLike:
    return embedder_for(settings, active_model_name(settings)[0], cache)
