"""A deer's (or a camera's) activity as four PNG bar charts: hour, daylight, moon, season week."""

from __future__ import annotations

from pathlib import Path
from typing import cast

# Figure + savefig without pyplot: no global state and no display backend (as evaluation/report.py).
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deerid.domain.activity import DAYLIGHT, MOON_PHASES, Activity

_DPI = 110
_COLOUR = "#6b4f2a"


def _bars(title: str, labels: list[str], counts: list[int], *, rotate: int = 0) -> Figure:
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(counts)), counts, color=_COLOUR)
    ax.set_xticks(range(len(labels)), labels, rotation=rotate, ha="right" if rotate else "center")
    ax.set_ylabel("visits")
    ax.set_title(title)
    # A new linear axis's locator is an AutoLocator, a MaxNLocator; the base Locator's stub takes no params.
    cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def write_activity_plots(out_dir: Path, name: str, counts: Activity) -> list[Path]:
    """hour.png, daylight.png, moon.png and weeks.png in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hours = [f"{h:02d}" if h % 3 == 0 else "" for h in range(24)]
    figures = {
        "hour.png": _bars(f"{name}: visits by hour of day", hours, counts.by_hour),
        "daylight.png": _bars(
            f"{name}: visits by daylight", list(DAYLIGHT), [counts.by_daylight[k] for k in DAYLIGHT]
        ),
        "moon.png": _bars(
            f"{name}: visits by moon phase",
            list(MOON_PHASES),
            [counts.by_moon[k] for k in MOON_PHASES],
            rotate=30,
        ),
        "weeks.png": _bars(
            f"{name}: visits by week of the season",
            [w.isoformat() for w, _ in counts.by_week],
            [n for _, n in counts.by_week],
            rotate=45,
        ),
    }
    paths = []
    for file, fig in figures.items():
        fig.savefig(out_dir / file, dpi=_DPI)
        paths.append(out_dir / file)
    return paths
