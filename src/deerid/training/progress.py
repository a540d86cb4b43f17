"""One human-readable line per progress event of `train()` (for the CLI)."""

from __future__ import annotations

from typing import Any


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
