"""Memory cards made of real feeder photos."""

from __future__ import annotations

import json
from pathlib import Path

from support.paths import FEEDER, FEEDER_JSON


def feeder_card(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    """A card folder linking (not copying) these feeder photos, and a detections file holding
    only their entries: (folder, detections file)."""
    card = tmp_path / "card"
    card.mkdir()
    for name in names:
        (card / name).symlink_to(FEEDER / name)
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    md = tmp_path / "md.json"
    md.write_text(json.dumps(data))
    return card, md
