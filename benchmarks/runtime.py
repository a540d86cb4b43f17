"""CPU inference runtime, in one run: speed of every runtime variant, their accuracy on nyala
folds, and end-to-end embedding with and without decode overlap.

    python benchmarks/runtime.py [--json] [--backbone efficientnet_lite1] [--batch 32] [--rounds 5]
                                 [--copies 4] [--skip-accuracy] [--skip-int8]

1. **Runtimes.** Eager PyTorch and ONNX Runtime are built by `get_embedder` exactly as the
   product builds them (`DEERID_RUNTIME=torch` / `onnx`), in a fresh temporary data dir, so
   the export time is measured too. Further ONNX Runtime rows are the same model with one
   session option or the batch size changed (the options the product does not use, to
   show why), the graph the previous exporter wrote (TF padding traced into Shape→Pad
   chains) and an int8 model (static QDQ quantization, per-channel weights, calibrated
   on every real feeder animal crop; an experiment, not a product runtime). Input: real
   feeder crops cut as the ingest cuts them, repeated to fill a batch. Two figures per
   row, each the median over `--rounds` rounds in which every row is timed once, in turn,
   after one warm-up, so a change of load on the machine hits every row alike:
   - model: the forward of an already preprocessed batch;
   - embed: `embed(crops)`, i.e. resize + normalise + forward + head.
2. **Accuracy.** top-1 / top-5 / mAP on the 3 folds by individual of ../shared/data/nyala/train
   (the split of benchmarks/openset_cv.py; metrics of `deerid.evaluation.retrieval`, a query
   never matching its own sighting), for eager PyTorch, ONNX Runtime fp32 and int8.
3. **End to end.** `embed_detections` over `--copies` copies of the 47 real feeder photos
   (each copy one byte longer, so a new photo to the database) with their boxes, in an
   embedded PostgreSQL: verify + JPEG decode + crop + embed + store, with the decode
   thread (`decode_ahead` default) and without it (`decode_ahead=0`), alternating, median
   of `--rounds`. Crops/s count the crops embedded; model-only crops/s of the same
   embedder, measured between those runs, is the reference for the 80 % target.

The 1-minute load average is printed with every section: other work on the machine lowers
every figure, so ratios measured in one run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from deerid.core.config import DEFAULT_BACKBONE, Settings  # noqa: E402
from deerid.embed.backbones import efficientnet_lite  # noqa: E402
from deerid.embed.embedder import get_embedder  # noqa: E402
from deerid.embed.onnx_runtime import OnnxEmbedder, _Network, _open_session  # noqa: E402
from deerid.embed.preprocess import BatchedEmbedder, to_batch  # noqa: E402
from deerid.embed.resize import squash  # noqa: E402
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics  # noqa: E402
from deerid.ingest.crop import crop_boxes  # noqa: E402
from openset_cv import NYALA, folds  # noqa: E402

FEEDER = REPO.parent / "shared" / "data" / "trailcam" / "feeder"
FEEDER_JSON = FEEDER.parent / "feeder.detections.json"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def all_feeder_crops(size: int) -> list:
    """Every animal box of the feeder set (MegaDetector category 1), cut as the ingest cuts them."""
    crops = []
    for entry in json.loads(FEEDER_JSON.read_text())["images"]:
        boxes = [d["bbox"] for d in entry["detections"] if d["category"] == "1"]
        crops += [c.image for c in crop_boxes(FEEDER / entry["file"], boxes, target_size=size) if c.image]
    return crops


def feeder_crops(n: int, size: int) -> list:
    crops = all_feeder_crops(size)
    return [crops[i % len(crops)] for i in range(n)]


class SessionEmbedder(BatchedEmbedder):
    """`embed` on any ONNX Runtime session of the same network (option or graph variants)."""

    def __init__(self, base: OnnxEmbedder, session: Any, batch_size: int) -> None:
        self.model_id, self.input_size, self.dim = base.model_id, base.input_size, base.dim
        self.batch_size, self._spec, self._session = batch_size, base._spec, session

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        return self._session.run(["vectors"], {"pixels": batch.contiguous().numpy()})[0]


def session(path: Path, threads: int, **changes: Any) -> Any:
    """The product's session (`_open_session`) with some options changed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = changes.get("mode", ort.ExecutionMode.ORT_SEQUENTIAL)
    options.graph_optimization_level = changes.get("level", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if "spinning" in changes:
        options.add_session_config_entry("session.intra_op.allow_spinning", changes["spinning"])
    options.log_severity_level = 3  # the quantizer's models make it list unused initialisers
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_v1_graph(embedder: OnnxEmbedder, torch_embedder: Any, path: Path) -> None:
    """The graph the previous exporter wrote: SAME padding traced from the input's shape."""

    def traced_padding_forward(self, x: torch.Tensor) -> torch.Tensor:  # the old SameConv2d.forward
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    module = _Network(torch_embedder._network, torch_embedder._head).eval()
    original = efficientnet_lite.SameConv2d.forward
    efficientnet_lite.SameConv2d.forward = traced_padding_forward  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, 3, embedder.input_size, embedder.input_size),),
                str(path),
                input_names=["pixels"],
                output_names=["vectors"],
                dynamic_axes={"pixels": {0: "n"}, "vectors": {0: "n"}},
                opset_version=17,
                dynamo=False,
            )
    finally:
        efficientnet_lite.SameConv2d.forward = original  # type: ignore[method-assign]


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> float:
    """Static int8 (QDQ; uint8 activations, int8 per-channel weights; Conv, ReLU6 and the residual
    Adds quantized, the head left in float), min/max ranges from the calibration batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": calibration[i : i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    started = time.perf_counter()
    pre = out.with_name("pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "Clip", "Add"],
        calibrate_method=CalibrationMethod.MinMax,
    )
    return time.perf_counter() - started


def interleaved(rows: dict[str, Callable[[], object]], n: dict[str, int], rounds: int) -> dict[str, dict]:
    """crops/s per row: one warm-up each, then `rounds` rounds timing every row once, in turn."""
    for fn in rows.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, fn in rows.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: {
            "median": round(n[name] / statistics.median(t), 1),
            "best": round(n[name] / min(t), 1),
        }
        for name, t in times.items()
    }


def speed(
    backbone: str, batch: int, rounds: int, work: Path, with_int8: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Section 1. Returns the results and the embedders (for the accuracy section)."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    crops = feeder_crops(2 * batch, 240)
    out: dict[str, Any] = {"load_before": load()}
    embedders: dict[str, Any] = {}
    data_dir = work / "data"
    for runtime in ("torch", "onnx"):
        settings = Settings(
            data_dir=data_dir, backbone=backbone, device="cpu", embed_batch_size=batch, runtime=runtime
        )
        start = time.perf_counter()
        embedders[runtime] = get_embedder(settings)
        out[f"{runtime}_first_start_s"] = round(time.perf_counter() - start, 2)
    onnx: OnnxEmbedder = embedders["onnx"]
    out["model_id"] = onnx.model_id
    out["threads"] = onnx.threads
    out["same_model_id"] = onnx.model_id == embedders["torch"].model_id

    import onnxruntime as ort

    size = onnx.input_size
    x = to_batch(crops[:batch], size, onnx._spec.mean, onnx._spec.std)
    x2 = to_batch(crops, size, onnx._spec.mean, onnx._spec.std)
    v1 = work / "v1.onnx"
    export_v1_graph(onnx, embedders["torch"], v1)
    variants: dict[str, tuple[Any, int]] = {
        # name: (embedder, batch)
        "torch eager": (embedders["torch"], batch),
        "onnx fp32 (kept)": (onnx, batch),
        "onnx fp32, spinning off": (
            SessionEmbedder(onnx, session(onnx.path, threads, spinning="0"), batch),
            batch,
        ),
        "onnx fp32, parallel executor": (
            SessionEmbedder(onnx, session(onnx.path, threads, mode=ort.ExecutionMode.ORT_PARALLEL), batch),
            batch,
        ),
        "onnx fp32, EXTENDED (no layout opt.)": (
            SessionEmbedder(
                onnx,
                session(onnx.path, threads, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
                batch,
            ),
            batch,
        ),
        "onnx fp32, 1 thread": (SessionEmbedder(onnx, session(onnx.path, 1), batch), batch),
        "onnx fp32, batch 16": (SessionEmbedder(onnx, _open_session(ort, onnx.path, threads), 16), 16),
        "onnx fp32, batch 64": (SessionEmbedder(onnx, _open_session(ort, onnx.path, threads), 64), 64),
        "onnx fp32, previous graph (Pad chains)": (SessionEmbedder(onnx, session(v1, threads), batch), batch),
    }
    if with_int8:
        calibration = to_batch(all_feeder_crops(size), size, onnx._spec.mean, onnx._spec.std).numpy()
        int8_path = work / "int8.onnx"
        out["int8_calibration_crops"] = len(calibration)
        out["int8_quantize_s"] = round(quantize_int8(onnx.path, int8_path, calibration), 1)
        variants["onnx int8 (QDQ, experiment)"] = (
            SessionEmbedder(onnx, session(int8_path, threads), batch),
            batch,
        )
        embedders["int8"] = variants["onnx int8 (QDQ, experiment)"][0]

    def model_fn(embedder: Any, b: int) -> Callable[[], object]:
        batch_x = x2[:b] if b <= len(x2) else torch.cat([x2] * (b // len(x2) + 1))[:b]
        return lambda: embedder._forward(batch_x)

    def embed_fn(embedder: Any, b: int) -> Callable[[], object]:
        items = [crops[i % len(crops)] for i in range(b)]
        return lambda: embedder.embed(items)

    out["model"] = interleaved(
        {name: model_fn(e, b) for name, (e, b) in variants.items()},
        {k: b for k, (_, b) in variants.items()},
        rounds,
    )
    out["load_after_model"] = load()
    out["embed"] = interleaved(
        {name: embed_fn(e, b) for name, (e, b) in variants.items()},
        {k: b for k, (_, b) in variants.items()},
        rounds,
    )
    out["load_after_embed"] = load()
    reference = embedders["torch"]._forward(x)
    out["max_abs_diff_vs_torch"] = {
        name: float(np.abs(e._forward(x) - reference).max())
        for name, (e, _) in variants.items()
        if name != "torch eager"
    }
    start = time.perf_counter()
    get_embedder(
        Settings(data_dir=data_dir, backbone=backbone, device="cpu", embed_batch_size=batch, runtime="onnx")
    )
    out["onnx_second_start_s"] = round(time.perf_counter() - start, 2)
    return out, embedders


def accuracy(embedders: dict[str, Any]) -> dict[str, Any]:
    """Section 2: closed-set retrieval on each fold's held-out individuals, per runtime."""
    samples = load_identity_folder(NYALA)
    individuals = np.array([s[1] for s in samples])
    sightings = [f"{s[1]}/{s[2]}" for s in samples]
    any_embedder = next(iter(embedders.values()))
    from PIL import Image

    pixels = []
    for path, _, _ in samples:
        with Image.open(path) as img:
            pixels.append(squash(img, any_embedder.input_size))
    out: dict[str, Any] = {
        "images": len(samples),
        "individuals": len(set(individuals)),
        "load_before": load(),
    }
    vectors = {}
    for name, embedder in embedders.items():
        start = time.perf_counter()
        vectors[name] = embedder.embed(pixels)
        per_fold = []
        for test in folds(individuals):
            held = np.flatnonzero(test)
            m = retrieval_metrics(vectors[name][held], list(individuals[held]), [sightings[i] for i in held])
            per_fold.append(
                {k: round(float(m[k]), 4) for k in ("top1", "top5", "mAP")} | {"queries": m["n_queries"]}
            )
        out[name] = {
            "folds": per_fold,
            "mean": {k: round(float(np.mean([f[k] for f in per_fold])), 4) for k in ("top1", "top5", "mAP")},
            "embed_s": round(time.perf_counter() - start, 1),
        }
        if name != "torch":
            out[name]["max_abs_diff_vs_torch"] = float(np.abs(vectors[name] - vectors["torch"]).max())
            out[name]["same_top1_as_torch"] = bool(
                np.array_equal(_nearest(vectors[name], sightings), _nearest(vectors["torch"], sightings))
            )
    out["load_after"] = load()
    return out


def _nearest(vectors: np.ndarray, sightings: list[str]) -> np.ndarray:
    """Each image's nearest image outside its own sighting (the top-1 retrieval answer)."""
    sim = vectors @ vectors.T
    sig = np.asarray(sightings)
    sim[sig[:, None] == sig[None, :]] = -np.inf
    return sim.argmax(axis=1)


def end_to_end(backbone: str, batch: int, rounds: int, copies: int, work: Path) -> dict[str, Any]:
    """Section 3: `embed_detections` over real feeder photos, with and without the decode thread."""
    from deerid.app import Deerid
    from deerid.db.embedded import start_embedded, stop_embedded
    from deerid.db.session import create_database, upgrade_schema
    from deerid.db.tables import Detection
    from deerid.pipeline.ingest import ingest
    from deerid.reid.service import embed_detections

    photos = work / "photos"
    photos.mkdir()
    entries = json.loads(FEEDER_JSON.read_text())
    images = []
    for k in range(copies):
        for entry in entries["images"]:
            name = f"c{k}_{entry['file']}"
            # One byte more per copy: another photo (another sha256) with the same pixels and boxes.
            (photos / name).write_bytes((FEEDER / entry["file"]).read_bytes() + b"\0" * k)
            images.append({**entry, "file": name})
    detections = work / "detections.json"
    detections.write_text(json.dumps({**entries, "images": images}))

    root_url = start_embedded(work / "pgdata")
    try:
        url = create_database(root_url, f"bench_{uuid.uuid4().hex[:10]}")
        engine = sa.create_engine(url)
        upgrade_schema(engine)
        engine.dispose()
        settings = Settings(
            database_url=url, data_dir=work / "data", backbone=backbone, device="cpu", embed_batch_size=batch
        )
        with Deerid(settings) as app:
            embedder = get_embedder(settings, app.models)  # the one ingest uses, from its cache
            report = ingest(app, photos, detections, reidentify=False)
            factory = app.sessions
            with factory() as session:
                ids = list(
                    session.execute(sa.select(Detection.id).where(Detection.sex.is_not(None))).scalars()
                )
            size = embedder.input_size
            x = to_batch(feeder_crops(batch, size), size, embedder._spec.mean, embedder._spec.std)

            def run(ahead: int | None) -> tuple[float, int]:
                start = time.perf_counter()
                errors = embed_detections(
                    factory,
                    ids,
                    embedder,
                    min_size=settings.min_crop_size,
                    batch_size=batch,
                    force=True,
                    mark_failed=False,
                    decode_ahead=ahead,
                )
                return time.perf_counter() - start, len(ids) - len(errors)

            def model_only() -> float:
                start = time.perf_counter()
                embedder._forward(x)
                return time.perf_counter() - start

            out: dict[str, Any] = {
                "photos": report.photos,
                "deer_boxes": len(ids),
                "runtime": getattr(embedder, "runtime", "torch"),
                "load_before": load(),
            }
            run(None)  # warm-up: page cache, the session's arena, the database's
            model_only()
            seconds: dict[str, list[float]] = {"model_only": [], "overlap": [], "sequential": []}
            for _ in range(rounds):
                seconds["model_only"].append(model_only())
                for name, ahead in (("overlap", None), ("sequential", 0)):
                    t, embedded = run(ahead)
                    seconds[name].append(t)
            out["embedded"] = embedded
            out["crops_per_s"] = {
                "model_only": round(batch / statistics.median(seconds["model_only"]), 1),
                "end_to_end_with_overlap": round(embedded / statistics.median(seconds["overlap"]), 1),
                "end_to_end_without_overlap": round(embedded / statistics.median(seconds["sequential"]), 1),
            }
            rates = out["crops_per_s"]
            out["overlap_vs_model"] = round(rates["end_to_end_with_overlap"] / rates["model_only"], 2)
            out["sequential_vs_model"] = round(rates["end_to_end_without_overlap"] / rates["model_only"], 2)
            out["load_after"] = load()
            return out
    finally:
        stop_embedded(work / "pgdata")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=4, help="copies of the feeder photos end to end")
    parser.add_argument("--skip-accuracy", action="store_true", help="no nyala folds (minutes on 2 cores)")
    parser.add_argument("--skip-int8", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deerid-runtime-"))
    results: dict[str, Any] = {"backbone": args.backbone, "batch": args.batch, "rounds": args.rounds}
    results["cpu_cores"] = os.cpu_count()
    try:
        results["speed"], embedders = speed(args.backbone, args.batch, args.rounds, work, not args.skip_int8)
        print_speed(results)
        if not args.skip_accuracy:
            results["accuracy"] = accuracy(
                {k: embedders[k] for k in ("torch", "onnx", "int8") if k in embedders}
            )
            print_accuracy(results["accuracy"])
        if not args.skip_end_to_end:
            results["end_to_end"] = end_to_end(args.backbone, args.batch, args.rounds, args.copies, work)
            print_end_to_end(results["end_to_end"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results))


def print_speed(results: dict[str, Any]) -> None:
    s = results["speed"]
    print(
        f"\n1. {results['backbone']} @ 240 px, batch {results['batch']}, {results['cpu_cores']} cores, "
        f"{s['threads']} ORT threads; median (best) of {results['rounds']} interleaved rounds; "
        f"load {s['load_before']} -> {s['load_after_model']} -> {s['load_after_embed']}"
    )
    print(f"{'runtime':<42} {'model crops/s':>16} {'embed crops/s':>16} {'max abs vs torch':>17}")
    for name in s["model"]:
        m, e = s["model"][name], s["embed"][name]
        diff = s["max_abs_diff_vs_torch"].get(name)
        print(
            f"{name:<42} {m['median']:>7.1f} ({m['best']:>6.1f}) {e['median']:>7.1f} ({e['best']:>6.1f}) "
            f"{'' if diff is None else f'{diff:.1e}':>17}"
        )
    print(
        f"first start: torch {s['torch_first_start_s']} s, onnx {s['onnx_first_start_s']} s (export); "
        f"second onnx start {s['onnx_second_start_s']} s; same model id: {s['same_model_id']}"
        + (
            f"; int8 quantization {s['int8_quantize_s']} s on {s['int8_calibration_crops']} crops"
            if "int8_quantize_s" in s
            else ""
        )
    )


def print_accuracy(a: dict[str, Any]) -> None:
    print(
        f"\n2. nyala train, {a['images']} images of {a['individuals']} individuals, 3 folds by individual "
        f"(held-out queries per fold: {', '.join(str(f['queries']) for f in a['torch']['folds'])}); "
        f"load {a['load_before']} -> {a['load_after']}"
    )
    print(f"{'runtime':<8} {'fold':>5} {'top-1':>7} {'top-5':>7} {'mAP':>7}")
    for name in ("torch", "onnx", "int8"):
        if name not in a:
            continue
        for k, f in enumerate(a[name]["folds"]):
            print(f"{name:<8} {k:>5} {f['top1']:>7.2%} {f['top5']:>7.2%} {f['mAP']:>7.2%}")
        m = a[name]["mean"]
        extra = ""
        if name != "torch":
            extra = (
                f"   max abs vs torch {a[name]['max_abs_diff_vs_torch']:.1e}, "
                f"same top-1 answer for every image: {a[name]['same_top1_as_torch']}"
            )
        print(f"{name:<8} {'mean':>5} {m['top1']:>7.2%} {m['top5']:>7.2%} {m['mAP']:>7.2%}{extra}")


def print_end_to_end(e: dict[str, Any]) -> None:
    r = e["crops_per_s"]
    print(
        f"\n3. embed_detections ({e['runtime']}): {e['photos']} real feeder photos, "
        f"{e['deer_boxes']} deer boxes, {e['embedded']} embedded; "
        f"load {e['load_before']} -> {e['load_after']}"
    )
    print(f"model only                         {r['model_only']:>7.1f} crops/s")
    print(
        f"end to end, decode thread          {r['end_to_end_with_overlap']:>7.1f} crops/s "
        f"({e['overlap_vs_model']:.0%} of model only)"
    )
    print(
        f"end to end, decode in line         {r['end_to_end_without_overlap']:>7.1f} crops/s "
        f"({e['sequential_vs_model']:.0%} of model only)"
    )


if __name__ == "__main__":
    main()
