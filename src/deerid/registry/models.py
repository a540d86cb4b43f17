"""Which model embeds: the pretrained backbones and the models trained with `deerid train`.

The active model is, in order: DEERID_MODEL, the choice saved by
`deerid models use`, DEERID_BACKBONE. Trained models live in
`<data dir>/models/<name>/` with a `model.json` that records their model id.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deerid.core.config import Settings
from deerid.core.files import atomic_write
from deerid.embed.embedder import available_backbones, get_embedder
from deerid.embed.protocol import EmbedderLike
from deerid.errors import NotFound

ACTIVE_FILE = "active_model.json"


class UnknownModelError(NotFound):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what `deerid models use` takes: a backbone name or a trained model's folder name
    kind: str  # "pretrained" or "trained"
    model_id: str | None  # None for a pretrained backbone not used yet (its id needs its weights)
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_trained(info: dict[str, Any]) -> bool:
    return info.get("kind") == "trained"


def trained_models(settings: Settings) -> list[ModelEntry]:
    entries = []
    if settings.models_dir.is_dir():
        for model_json in sorted(settings.models_dir.glob("*/model.json")):
            info = _read_json(model_json)
            if info is not None and is_trained(info):
                entries.append(
                    ModelEntry(
                        model_json.parent.name, "trained", info.get("model_id"), model_json.parent, info
                    )
                )
    return entries


def _pretrained_ids(settings: Settings) -> dict[str, str]:
    """Model ids of pretrained backbones already used here (their heads are saved)."""
    ids: dict[str, str] = {}
    if settings.models_dir.is_dir():
        for model_json in settings.models_dir.glob("*/model.json"):
            info = _read_json(model_json)
            if info and not is_trained(info) and info.get("backbone") and info.get("model_id"):
                ids.setdefault(str(info["backbone"]), str(info["model_id"]))
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
    saved = _read_json(settings.data_dir / ACTIVE_FILE)
    if saved and isinstance(saved.get("model"), str):
        return saved["model"], "deerid models use"
    return settings.backbone, "DEERID_BACKBONE" if "backbone" in settings.model_fields_set else "default"


def use_model(settings: Settings, key: str) -> ModelEntry:
    entry = find_model(settings, key)
    atomic_write(settings.data_dir / ACTIVE_FILE, json.dumps({"model": entry.name}))
    return entry


_trained_cache: dict[tuple[str, str, int], EmbedderLike] = {}
_trained_lock = threading.Lock()


def embedder_for(settings: Settings, key: str) -> EmbedderLike:
    """The embedder of model `key` (backbone name, trained model name or model id)."""
    if key in available_backbones():
        return get_embedder(settings.model_copy(update={"backbone": key}))
    entry = find_model(settings, key)
    if entry.kind == "pretrained":
        return get_embedder(settings.model_copy(update={"backbone": entry.name}))
    from deerid.embed.trained import load_trained_embedder

    assert entry.path is not None
    cache_key = (str(entry.path), settings.resolved_device, settings.embed_batch_size)
    with _trained_lock:
        embedder = _trained_cache.get(cache_key)
        if embedder is None:
            embedder = load_trained_embedder(entry.path, settings.resolved_device, settings.embed_batch_size)
            _trained_cache[cache_key] = embedder
        return embedder


def active_embedder(settings: Settings) -> EmbedderLike:
    return embedder_for(settings, active_model_name(settings)[0])
