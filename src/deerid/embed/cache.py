"""Loaded embedders, kept for the life of one runtime context.

Loading a network costs seconds (weights, head, an ONNX session), so each is
built once per process and reused; the context (`deerid.app.Deerid`) owns the
cache and drops it on close, so nothing outlives the settings it was built for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class ModelCache:
    def __init__(self) -> None:
        self._items: dict[Hashable, object] = {}
        # One lock for building too: two threads asking for one model load it once.
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
