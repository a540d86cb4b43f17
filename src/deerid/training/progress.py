"""Progress events of `train()` / `adapt()`, and one human-readable line per event (for the CLI).

An event is a flat dict with a `phase` ("cache", "resume", "epoch", "pseudo", "done", ...)
and that phase's numbers; a progress callback receives each one as it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressEvent = dict[str, Any]
ProgressCallback = Callable[[ProgressEvent], None]


def emit(progress: ProgressCallback | None, **event: Any) -> None:
    if progress is not None:
        progress(event)


def _mmss(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(event: dict[str, Any]) -> str:
    phase = event.get("phase")
    if phase == "cache":
        return f"caching frozen features {event['done']}/{event['total']} images ({_mmss(event['seconds'])})"
    if phase == "epoch":
        val = event.get("val_top1")
        val_s = f"  validation top-1 {val:.1%}" if val is not None else ""
        return (
            f"epoch {event['epoch']}/{event['epochs']}  loss {event['loss']:.3f}{val_s}  "
            f"{event['seconds']:.0f} s  ETA ≤ {_mmss(event['eta_s'])}  (best epoch {event['best_epoch']})"
        )
    if phase == "resume":
        return f"resuming after epoch {event['epoch']}"
    if phase == "done":
        if event.get("reused"):
            return f"already trained with this recipe and data: {event['model_id']}"
        return f"done: {event['model_id']} (best epoch {event['best_epoch']}, {_mmss(event['seconds'])})"
    return str(event)
