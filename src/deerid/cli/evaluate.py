"""`deerid eval` and `deerid calibrate`: how well a model tells deer apart, and the threshold
from which it merges on its own."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deerid.cli.root import bar, console, context, fail, progress_factory

if TYPE_CHECKING:
    from deerid.app import Deerid
    from deerid.evaluation.review import ReviewOptions
    from deerid.evaluation.run import EvaluationResult


def _report_dir(app: Deerid, kind: str, model_id: str, given: Path | None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return given or app.paths.reports / f"{kind}-{model_id}-{stamp}"


def _evaluate(
    app: Deerid,
    directory: Path | None,
    from_db: bool,
    model: str | None,
    max_false_merge: float,
    orders: int,
    seed: int,
    quiet: bool,
    review: ReviewOptions | None = None,
) -> EvaluationResult:
    """Evaluate the model on a labelled folder or on the database's confirmed sightings."""
    from deerid.evaluation.run import evaluate_folder, evaluate_vectors
    from deerid.pipeline.labelled import confirmed_vectors

    if (directory is None) == (not from_db):
        fail("give a labelled folder (DIR/<individual>/<sighting>_<anything>.jpg) or --from-db, not both")
    embedder = app.embedder(model)
    threshold = app.threshold(embedder.model_id).value
    try:
        if directory is not None:
            if not directory.is_dir():
                fail(f"folder not found: {directory}")
            with bar(disable=quiet) as progress:
                advance = progress_factory(progress)("embedding", sum(1 for _ in directory.rglob("*.jpg")))
                return evaluate_folder(
                    directory,
                    embedder,
                    review=review,
                    threshold=threshold,
                    orders=orders,
                    seed=seed,
                    target_fmr=max_false_merge,
                    progress=advance,
                )
        data = confirmed_vectors(app, embedder.model_id)
        return evaluate_vectors(
            data.vectors,
            data.individuals,
            data.sightings,
            threshold,
            orders=orders,
            seed=seed,
            target_fmr=max_false_merge,
            model_id=embedder.model_id,
            source="confirmed sightings in the database",
        )
    except ValueError as exc:  # the evaluation's own checks on the data (too few individuals, no images)
        fail(str(exc))


def _print_evaluation(out: dict[str, Any]) -> None:
    o = out["openset"]
    console.print(
        f"model {out['model_id']} on {out['n_images']} images of {out['n_individuals']} individuals\n"
        f"closed set: top-1 {out['top1']:.1%}  top-5 {out['top5']:.1%}  mAP {out['mAP']:.1%} "
        f"({out['n_queries']} queries, {out['n_excluded']} without another sighting)\n"
        + (
            f"open set at threshold {out['threshold']:.2f}"
            if out["threshold"] is not None
            else "open set with no threshold (no automatic merges)"
        )
        + f": BCubed P {o['bcubed_precision']:.1%} "
        f"R {o['bcubed_recall']:.1%} F1 {o['bcubed_f1']:.1%}, false merges {o['false_merge_rate']:.1%}, "
        f"{o['profiles_per_individual']:.2f} profiles per individual",
        soft_wrap=True,
    )


def _review_options(app: Deerid, model: str | None, k: int) -> ReviewOptions:
    """The review queue as the API runs it: with the model's stored probability when it has one."""
    from deerid.evaluation.review import ReviewOptions
    from deerid.registry.calibration import load_probability

    fitted = load_probability(app.settings, app.embedder(model).model_id)
    if fitted is None:
        return ReviewOptions(k=k)
    return ReviewOptions(k=k, probability=lambda scores: fitted(scores))


def _print_review(review: dict[str, Any], plot: Path) -> None:
    to = review["decisions_per_image_to_f1"]
    at = review["f1_at_decisions_per_image"]

    def dec(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.2f}"

    console.print(
        f"review (top-{review['k']} screen, oracle): decisions per image to F1 0.8 {dec(to['0.8'])}, "
        f"0.9 {dec(to['0.9'])}, 0.95 {dec(to['0.95'])}; F1 after 0.25/0.5/1 per image "
        f"{at['0.25']:.1%} / {at['0.5']:.1%} / {at['1']:.1%} ({review['decisions']} decisions, "
        f"{review['matches']} merges; start F1 {review['start_f1']:.1%})\nreview plot: {plot}",
        soft_wrap=True,
    )


def eval_(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="DIR/<individual>/<sighting>_<anything>.jpg")],
    model: Annotated[str | None, typer.Option(help="Model to evaluate (default: the active one).")] = None,
    report: Annotated[Path | None, typer.Option(help="Folder for report.md and plots.")] = None,
    orders: Annotated[int, typer.Option(help="Seeded arrival orders for the open-set stream.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    review: Annotated[
        bool, typer.Option("--review", help="Also run the review queue with an oracle: decisions per image.")
    ] = False,
    k: Annotated[int, typer.Option(min=1, max=9, help="Candidates per review screen.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of figures.")] = False,
) -> None:
    """Closed-set (top-1, top-5, mAP) and open-set (BCubed, false merges) figures, with plots;
    with --review, how many review decisions per image bring the profiles to F1 0.8/0.9/0.95."""
    from deerid.evaluation.calibration import DEFAULT_TARGET_FMR
    from deerid.evaluation.report import write_report

    app = context(ctx)
    options = _review_options(app, model, k) if review else None
    result = _evaluate(app, directory, False, model, DEFAULT_TARGET_FMR, orders, seed, as_json, options)
    out = result.as_dict()
    path = write_report(_report_dir(app, "eval", out["model_id"], report), result)
    out["report"] = str(path)
    _print_evaluation(out)
    if result.review is not None:
        from deerid.evaluation.review import plot_review

        plot_review([(f"top-{k} screen", result.review)], path.parent / "review.png")
        _print_review(out["review"], path.parent / "review.png")
    console.print(f"report: {path}", soft_wrap=True)
    if as_json:
        print(json.dumps(out))


def calibrate(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Argument(help="A labelled folder, or use --from-db.")] = None,
    from_db: Annotated[bool, typer.Option("--from-db", help="Use sightings people confirmed.")] = False,
    max_false_merge: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Target false-merge rate of automatic merges.")
    ] = 0.02,
    model: Annotated[str | None, typer.Option(help="Model to calibrate (default: the active one).")] = None,
    save: Annotated[bool, typer.Option("--save/--dry-run", help="Store the calibration.")] = True,
    report: Annotated[Path | None, typer.Option(help="Folder for report.md and plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fit the same-animal probability and the automatic-merge threshold: the lowest score at
    which measured false merges stay within the target (default 2 %); below it, people decide."""
    from deerid.evaluation.calibration import fmt_threshold, stored_record
    from deerid.evaluation.pairs import probability_table
    from deerid.evaluation.report import write_report
    from deerid.pipeline.labelled import fit_from_db
    from deerid.registry import calibration

    app = context(ctx)
    result = _evaluate(app, directory, from_db, model, max_false_merge, 3, 0, as_json)
    cal = result.calibration
    probability = result.probability
    if from_db:
        # --from-db evaluates with the embedder's model id (`_evaluate`), never None.
        assert result.model_id is not None
        # What people decided, rejected pairs included (the folder fit has no rejections).
        probability = fit_from_db(app, result.model_id)
    out = result.as_dict()
    path = write_report(_report_dir(app, "calibrate", out["model_id"], report), result)
    record = stored_record(
        cal,
        probability,
        data=str(directory) if directory is not None else "confirmed sightings in the database",
        n_images=out["n_images"],
        n_individuals=out["n_individuals"],
        report=str(path),
    )
    if save:
        calibration.save(app.settings, out["model_id"], record)
    at = probability_table(probability) if probability is not None else {}
    chosen = (
        f"automatic merges from score {fmt_threshold(cal.threshold)} for model {out['model_id']}: "
        f"{cal.reason}"
        if cal.met
        else f"no threshold keeps false merges ≤ {max_false_merge:.0%} for model {out['model_id']}: "
        f"{cal.reason}\nso this model makes no automatic merges; every new track waits for review"
    )
    console.print(
        chosen
        + "\nsame-animal probability at score "
        + ", ".join(f"{k}: {v:.2f}" for k, v in at.items())
        + (
            "\nstored: `deerid config` shows it in force unless REID_THRESHOLD is set"
            if save
            else "\nnot stored (--dry-run)"
        )
        + f"\nreport: {path}",
        soft_wrap=True,
    )
    if as_json:
        print(json.dumps({**record, "stored": save, "model_id": out["model_id"], "evaluation": out}))
