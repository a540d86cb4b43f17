"""Compare backbones, input sizes and head recipes for nyala re-identification.

    python benchmarks/backbones.py [--json] [--quick] [--resnet50-weights FILE] [--no-onnx]

Data: ../shared/data/nyala/train (identity-labelled, already cropped). For
every configuration it reports top-1, top-5 and mAP over the whole set
(179 individuals, same-sighting matches excluded) and, as a check against
tuning to one split, the mean top-1 / mAP over 3 disjoint folds of
individuals (~60 each, the size of the held-out set). Speed is images/s of
the whole embed step (resize + normalise + forward + head) on batches of 16
decoded crops, median of 7 timed batches, torch eager with the machine's
default threads; with ONNX Runtime installed it also times the bare forward
in both runtimes.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deerid.embed.backbones import (  # noqa: E402
    BACKBONES,
    BackboneSpec,
    load_network,
)
from deerid.embed.head import HeadConfig, build_projection, pool  # noqa: E402
from deerid.embed.preprocess import to_batch  # noqa: E402
from deerid.embed.weights import WeightsUnavailableError, resolve_weights  # noqa: E402
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "nyala" / "train"
BATCH = 16
TIMED_BATCHES = 7
N_FOLDS = 3

# (backbone, input size); native sizes first, then Lite2 above its native 260.
CONFIGS: list[tuple[str, int]] = [
    ("efficientnet_lite0", 224),
    ("efficientnet_lite1", 240),
    ("efficientnet_lite2", 260),
    ("efficientnet_lite1", 288),
    ("efficientnet_lite2", 320),
    ("efficientnet_lite2", 384),
    ("resnet50", 224),
]
QUICK = {("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("resnet50", 224)}

# Head options: pooling x projection. "none" keeps the raw pooled feature as a
# reference for what the 512-d projection costs; it is not a shippable head.
HEADS: list[tuple[str, str]] = [
    ("avg", "none"),
    ("gem", "none"),
    ("avg", "orthogonal"),
    ("gem", "orthogonal"),
    ("avg", "fc_svd"),
    ("gem", "fc_svd"),
]


@dataclass
class Row:
    backbone: str
    input_size: int
    status: str = "ok"
    embed_img_s: float | None = None
    torch_forward_img_s: float | None = None
    onnx_forward_img_s: float | None = None
    heads: dict[str, dict[str, float]] = field(default_factory=dict)


def _median_rate(fn: Callable[[], object], n_images: int) -> float:
    fn()  # warm-up: first call allocates and picks kernels
    times = []
    for _ in range(TIMED_BATCHES):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


class _Features(torch.nn.Module):
    """Forward + GeM pooling, the part of embedding ONNX can take over."""

    def __init__(self, network: torch.nn.Module, head: HeadConfig) -> None:
        super().__init__()
        self.network = network
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool(self.network.forward_features(x), self.head)


def _onnx_rate(network: torch.nn.Module, head: HeadConfig, x: torch.Tensor) -> float | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Features(network, head).eval(),
            (x,),
            buffer,
            input_names=["x"],
            output_names=["f"],
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return _median_rate(lambda: session.run(None, feed), BATCH)


def _folds(individuals: np.ndarray) -> list[np.ndarray]:
    ids = np.random.default_rng(0).permutation(np.unique(individuals))
    return [np.isin(individuals, ids[k::N_FOLDS]) for k in range(N_FOLDS)]


def _metrics(vectors: np.ndarray, individuals: np.ndarray, sightings: np.ndarray) -> dict[str, float]:
    full = retrieval_metrics(vectors, list(individuals), list(sightings))
    per_fold = [
        retrieval_metrics(vectors[m], list(individuals[m]), list(sightings[m])) for m in _folds(individuals)
    ]
    return {
        "top1": full["top1"],
        "top5": full["top5"],
        "mAP": full["mAP"],
        "n_queries": full["n_queries"],
        "fold_top1": float(np.mean([f["top1"] for f in per_fold])),
        "fold_top1_sd": float(np.std([f["top1"] for f in per_fold])),
        "fold_mAP": float(np.mean([f["mAP"] for f in per_fold])),
    }


def _load_network(spec: BackboneSpec, resnet_weights: Path | None) -> torch.nn.Module:
    explicit = resnet_weights if spec.name == "resnet50" else None
    weights = resolve_weights(spec.weights, explicit=explicit, allow_download=False)
    return load_network(spec, weights.path)


def run_config(
    spec: BackboneSpec,
    size: int,
    images: list[Image.Image],
    individuals: np.ndarray,
    sightings: np.ndarray,
    resnet_weights: Path | None,
    onnx: bool,
) -> Row:
    row = Row(spec.name, size)
    try:
        network = _load_network(spec, resnet_weights)
    except WeightsUnavailableError:
        if resnet_weights is not None:
            raise  # the user named a file: a refusal is their error to see, not a table cell
        row.status = "no weights offline (runs with weights the user supplies: DEERID_WEIGHTS)"
        return row
    pooled: dict[str, list[np.ndarray]] = {"avg": [], "gem": []}
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            fmap = network.forward_features(
                to_batch(images[start : start + BATCH], size, spec.mean, spec.std)
            )
            for pooling in pooled:
                cfg = HeadConfig(in_dim=spec.feature_dim, pooling=pooling)
                pooled[pooling].append(pool(fmap, cfg).double().numpy())
        features = {k: np.concatenate(v) for k, v in pooled.items()}

        for pooling, projection in HEADS:
            x = features[pooling]
            if projection != "none":
                cfg = HeadConfig(in_dim=spec.feature_dim, projection=projection)
                x = x @ build_projection(cfg, network.classifier_weight).double().numpy()
            row.heads[f"{pooling}+{projection}"] = _metrics(x, individuals, sightings)

        head_cfg = HeadConfig(in_dim=spec.feature_dim)
        projection_t = build_projection(head_cfg, network.classifier_weight)
        batch = images[:BATCH]

        def embed_once() -> object:
            x = to_batch(batch, size, spec.mean, spec.std)
            return torch.nn.functional.normalize(pool(network.forward_features(x), head_cfg) @ projection_t)

        row.embed_img_s = _median_rate(embed_once, BATCH)
        if onnx:
            x = to_batch(batch, size, spec.mean, spec.std)
            row.torch_forward_img_s = _median_rate(lambda: network.forward_features(x), BATCH)
    if onnx:
        row.onnx_forward_img_s = _onnx_rate(network, head_cfg, to_batch(batch, size, spec.mean, spec.std))
    return row


def seed_spread(
    spec: BackboneSpec, size: int, images: list[Image.Image], individuals: np.ndarray, sightings: np.ndarray
) -> list[dict[str, Any]]:
    """Metrics of the shipped head for seeds 0..2: shows the seed is not a tuned knob."""
    network = _load_network(spec, None)
    cfg0 = HeadConfig(in_dim=spec.feature_dim)
    with torch.inference_mode():
        feats = np.concatenate(
            [
                pool(
                    network.forward_features(to_batch(images[i : i + BATCH], size, spec.mean, spec.std)), cfg0
                )
                .double()
                .numpy()
                for i in range(0, len(images), BATCH)
            ]
        )
    out = []
    for seed in range(3):
        proj = build_projection(HeadConfig(in_dim=spec.feature_dim, seed=seed)).double().numpy()
        out.append({"seed": seed, **_metrics(feats @ proj, individuals, sightings)})
    return out


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def print_tables(rows: list[Row], seeds: list[dict[str, Any]], default: tuple[str, int]) -> None:
    print("\n### Backbones (shipped head: GeM + seeded orthogonal 512-d)\n")
    print("| backbone | input | top-1 % | top-5 % | mAP % | 3-fold top-1 % | 3-fold mAP % | embed img/s "
          "| torch fwd img/s | ORT fwd img/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mark = " **(default)**" if (r.backbone, r.input_size) == default else ""
        if r.status != "ok":
            print(f"| {r.backbone} | {r.input_size} | {r.status} | | | | | | | |")
            continue
        m = r.heads["gem+orthogonal"]
        print(
            f"| {r.backbone}{mark} | {r.input_size} "
            f"| {_pct(m['top1'])} | {_pct(m['top5'])} | {_pct(m['mAP'])} "
            f"| {_pct(m['fold_top1'])} ± {_pct(m['fold_top1_sd'])} | {_pct(m['fold_mAP'])} "
            f"| {_rate(r.embed_img_s)} | {_rate(r.torch_forward_img_s)} | {_rate(r.onnx_forward_img_s)} |"
        )
    print("\n### Head options (top-1 % / mAP % on all 179 individuals; 3-fold top-1 % in brackets)\n")
    names = [f"{p}+{q}" for p, q in HEADS]
    print("| backbone | input | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        if r.status != "ok":
            continue
        cells = [
            f"{_pct(r.heads[n]['top1'])} / {_pct(r.heads[n]['mAP'])} ({_pct(r.heads[n]['fold_top1'])})"
            for n in names
        ]
        print(f"| {r.backbone} | {r.input_size} | " + " | ".join(cells) + " |")
    if seeds:
        print(f"\n### Seed of the orthogonal projection ({default[0]} @ {default[1]})\n")
        print("| seed | top-1 % | top-5 % | mAP % |")
        print("|---|---|---|---|")
        for s in seeds:
            print(f"| {s['seed']} | {_pct(s['top1'])} | {_pct(s['top5'])} | {_pct(s['mAP'])} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON instead of tables")
    parser.add_argument("--quick", action="store_true", help="native-size Lite0/Lite1 and ResNet50 only")
    parser.add_argument("--data", type=Path, default=DATA, help="identity folder (default: nyala train)")
    parser.add_argument("--resnet50-weights", type=Path, help="torchvision resnet50 IMAGENET1K_V2 .pth")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime timing")
    parser.add_argument("--default", default="efficientnet_lite1@240", help="config to mark and seed-check")
    args = parser.parse_args(argv)

    items = load_identity_folder(args.data)
    images = [Image.open(path).convert("RGB") for path, _, _ in items]
    individuals = np.array([i for _, i, _ in items])
    sightings = np.array([s for _, _, s in items])
    name, size = args.default.split("@")
    default = (name, int(size))

    rows = []
    for backbone, input_size in CONFIGS:
        if args.quick and (backbone, input_size) not in QUICK:
            continue
        rows.append(
            run_config(
                BACKBONES[backbone],
                input_size,
                images,
                individuals,
                sightings,
                args.resnet50_weights,
                onnx=not args.no_onnx,
            )
        )
        if not args.json:
            print(f"done {backbone} @ {input_size}", file=sys.stderr, flush=True)
    seeds = seed_spread(BACKBONES[default[0]], default[1], images, individuals, sightings)

    if args.json:
        result = {
            "data": str(args.data),
            "n_images": len(items),
            "n_individuals": len(set(individuals)),
            "torch_threads": torch.get_num_threads(),
            "rows": [r.__dict__ for r in rows],
            "seed_spread": seeds,
        }
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{len(items)} images, {len(set(individuals))} individuals, "
            f"torch threads {torch.get_num_threads()}"
        )
        print_tables(rows, seeds, default)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
