"""An evaluation as PNG plots and a Markdown page that embeds them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# Figure + savefig without pyplot: no global figure state and no display backend,
# so reports can be written from worker threads and headless servers.
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from deerid.evaluation.clustering import OpenSetMetrics
from deerid.evaluation.pairs import probability_table

if TYPE_CHECKING:
    from deerid.evaluation.run import EvaluationResult

_DPI = 110
_ACTIVE = "tab:red"
_CALIBRATED = "tab:green"


def write_report(out_dir: Path, result: EvaluationResult) -> Path:
    """Write similarity.png, bcubed_pr.png, roc.png, threshold.png and report.md; return report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot_similarity(result).savefig(out_dir / "similarity.png", dpi=_DPI)
    _plot_bcubed_pr(result).savefig(out_dir / "bcubed_pr.png", dpi=_DPI)
    _plot_roc(result).savefig(out_dir / "roc.png", dpi=_DPI)
    _plot_threshold(result).savefig(out_dir / "threshold.png", dpi=_DPI)
    path = out_dir / "report.md"
    path.write_text(render_markdown(result), encoding="utf-8")
    return path


def _mark_thresholds(ax: Axes, result: EvaluationResult) -> None:
    if np.isfinite(result.threshold):  # NaN: no threshold in force, so nothing merges automatically
        ax.axvline(result.threshold, color=_ACTIVE, ls="--", lw=1, label=f"active {result.threshold:.2f}")
    ax.axvline(
        result.calibration.threshold,
        color=_CALIBRATED,
        ls=":",
        lw=1.5,
        label=f"calibrated {result.calibration.threshold:.2f}",
    )


def _plot_similarity(result: EvaluationResult) -> Figure:
    stats = result.similarity
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    edges = stats.histogram_edges
    width = np.diff(edges)
    for counts, label, colour in (
        (stats.same_histogram, f"same individual ({stats.n_same_pairs:,} pairs)", "tab:blue"),
        (
            stats.different_histogram,
            f"different individuals ({stats.n_different_pairs:,} pairs)",
            "tab:orange",
        ),
    ):
        density = counts / max(counts.sum(), 1) / width
        ax.stairs(density, edges, fill=True, alpha=0.45, color=colour, label=label)
    _mark_thresholds(ax, result)
    used = np.flatnonzero(stats.same_histogram + stats.different_histogram)
    ax.set_xlim(edges[used[0]] - 0.02, edges[used[-1] + 1] + 0.02)
    ax.set_xlabel("cosine similarity (pairs from different sightings)")
    ax.set_ylabel("density")
    ax.set_title(f"Pair similarities — ROC AUC {stats.auc:.3f}")
    ax.legend(fontsize=8)
    return fig


def _plot_bcubed_pr(result: EvaluationResult) -> Figure:
    sweep = result.sweep
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(sweep.curve("bcubed_recall"), sweep.curve("bcubed_precision"), ".-", ms=3, color="tab:blue")
    for threshold, res, colour, name in (
        (result.threshold, result.openset, _ACTIVE, "active"),
        (result.calibration.threshold, sweep.at(result.calibration.threshold), _CALIBRATED, "calibrated"),
    ):
        ax.plot(
            res.mean.bcubed_recall,
            res.mean.bcubed_precision,
            "o",
            color=colour,
            label=f"{name} {threshold:.2f}" if np.isfinite(threshold) else f"{name}: no automatic merges",
        )
    ceiling = result.openset_ceiling.mean
    ax.plot(
        ceiling.bcubed_recall, ceiling.bcubed_precision, "*", ms=10, color="black", label="perfect embedding"
    )
    ax.set_xlabel("BCubed recall")
    ax.set_ylabel("BCubed precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Open-set stream, thresholds {sweep.thresholds[0]:.2f}–{sweep.thresholds[-1]:.2f}")
    ax.legend(fontsize=8)
    return fig


def _plot_roc(result: EvaluationResult) -> Figure:
    stats = result.similarity
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(stats.roc_false_accept, stats.roc_true_accept, color="tab:blue", label=f"AUC {stats.auc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.plot(
        stats.far,
        stats.tar_at_far,
        "o",
        color="black",
        label=f"FAR {stats.far:.0%}: threshold {stats.threshold_at_far:.3f}",
    )
    ax.set_xlabel("false-accept rate (different-individual pairs ≥ threshold)")
    ax.set_ylabel("true-accept rate (same-individual pairs ≥ threshold)")
    ax.set_title("Pair verification ROC")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _plot_threshold(result: EvaluationResult) -> Figure:
    sweep = result.sweep
    ts = sweep.thresholds
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ts, sweep.curve("bcubed_f1"), color="tab:blue", label="BCubed F1")
    ax.plot(ts, sweep.curve("bcubed_precision"), color="tab:blue", lw=0.8, ls="--", label="BCubed precision")
    ax.plot(ts, sweep.curve("bcubed_recall"), color="tab:blue", lw=0.8, ls=":", label="BCubed recall")
    ax.plot(ts, sweep.curve("false_merge_rate"), color="tab:orange", label="false-merge rate (mean)")
    ax.plot(
        ts,
        sweep.worst_false_merge_rate,
        color="tab:orange",
        lw=0.8,
        ls="--",
        label="false-merge rate (worst)",
    )
    ax.axhline(result.calibration.target_fmr, color="grey", lw=0.8, label="false-merge target")
    _mark_thresholds(ax, result)
    ax.set_xlabel("threshold")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Open-set stream ({sweep.n_orders} arrival orders)")
    ax.legend(fontsize=7, loc="center left")
    return fig


def _pct(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.1f} %"


def _probability_lines(result: EvaluationResult) -> list[str]:
    if result.probability is None:
        return []
    table = probability_table(result.probability)
    return [
        f"**Same-animal probability** (isotonic, fitted on {result.probability.n_pairs:,} "
        "encounter-vs-individual scores; pairs inside one encounter excluded):",
        "",
        "| score | " + " | ".join(table) + " |",
        "|---" * (len(table) + 1) + "|",
        "| probability | " + " | ".join(f"{p:.3f}" for p in table.values()) + " |",
        "",
    ]


def render_markdown(result: EvaluationResult) -> str:
    r = result.retrieval
    cal = result.calibration
    at_cal = result.sweep.at(cal.threshold)
    stats = result.similarity
    ceiling = result.openset_ceiling

    def row(name: str, threshold: float, metrics: OpenSetMetrics, worst: float) -> str:
        shown = "—" if np.isnan(threshold) else f"{threshold:.2f}"
        return (
            f"| {name} | {shown} | {_pct(metrics.bcubed_precision)} | {_pct(metrics.bcubed_recall)} "
            f"| {_pct(metrics.bcubed_f1)} | {_pct(metrics.false_merge_rate)} | {_pct(worst)} "
            f"| {metrics.profiles_per_individual:.2f} | {_pct(metrics.singleton_rate)} |"
        )

    lines = [
        "# Re-identification evaluation",
        "",
        f"- Source: `{result.source or 'vectors'}`; model: `{result.model_id or 'unknown'}`",
        f"- {result.n_images:,} images of {result.n_individuals:,} individuals"
        + (f"; {len(result.skipped)} unreadable images skipped" if result.skipped else ""),
        f"- Aggregation `{result.aggregation.value}`; open-set numbers are means over "
        f"{result.openset.n_orders} arrival order(s) (seed {result.seed})",
        "",
        "## Closed set (sighting rule)",
        "",
        "| top-1 | top-5 | mAP | queries | excluded |",
        "|---|---|---|---|---|",
        f"| {_pct(r['top1'])} | {_pct(r['top5'])} | {_pct(r['mAP'])} "
        f"| {r['n_queries']} | {r['n_excluded']} |",
        "",
        "## Open set",
        "",
        "| | threshold | BCubed P | BCubed R | BCubed F1 | false merges (mean) | false merges (worst) "
        "| profiles / individual | singleton profiles |",
        "|---|---|---|---|---|---|---|---|---|",
        row(
            "active" if np.isfinite(result.threshold) else "active (none: no automatic merges)",
            result.threshold,
            result.openset.mean,
            result.openset.worst_false_merge_rate,
        ),
        row("calibrated", cal.threshold, at_cal.mean, at_cal.worst_false_merge_rate),
        row("perfect embedding", float("nan"), ceiling.mean, ceiling.worst_false_merge_rate),
        "",
        "The perfect-embedding row is the ceiling under the sighting rule: an image whose individual "
        "has so far been seen only in its own sighting must found a profile.",
        "",
        f"**Calibration** (target {_pct(cal.target_fmr)} false merges, rule `{cal.rule.value}`"
        f"{'' if cal.met else ', NOT MET'}): {cal.reason}",
        "",
        *_probability_lines(result),
        "![threshold](threshold.png)",
        "",
        "![BCubed precision-recall](bcubed_pr.png)",
        "",
        "## Pair similarities (different sightings only)",
        "",
        "| | pairs | median | 5th pct | 95th pct | 99th pct |",
        "|---|---|---|---|---|---|",
        f"| same individual | {stats.n_same_pairs:,} | {stats.same_median:.3f} "
        f"| {stats.same_percentiles[5]:.3f} | {stats.same_percentiles[95]:.3f} "
        f"| {stats.same_percentiles[99]:.3f} |",
        f"| different individuals | {stats.n_different_pairs:,} | {stats.different_median:.3f} "
        f"| {stats.different_percentiles[5]:.3f} | {stats.different_percentiles[95]:.3f} "
        f"| {stats.different_percentiles[99]:.3f} |",
        "",
        f"ROC AUC {stats.auc:.3f}. At a {_pct(stats.far)} false-accept rate the threshold is "
        f"{stats.threshold_at_far:.3f}, accepting {_pct(stats.tar_at_far)} of same-individual pairs.",
        "",
        "![similarity histograms](similarity.png)",
        "",
        "![ROC](roc.png)",
        "",
    ]
    if result.skipped:
        lines += ["## Skipped images", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in result.skipped[:50]]
        if len(result.skipped) > 50:
            lines.append(f"- … and {len(result.skipped) - 50} more")
        lines.append("")
    return "\n".join(lines)
