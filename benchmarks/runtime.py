"""Crops/s of the product embedder on eager PyTorch vs ONNX Runtime, in one run.

    python benchmarks/runtime.py [--json] [--backbone efficientnet_lite1] [--batch 32] [--repeats 3]

Both runtimes are built by `get_embedder` exactly as the product builds them
(`DEERID_RUNTIME=torch` / `onnx`), in a fresh temporary data dir, so the ONNX
export time is measured too. Input: real feeder crops (../shared/data/trailcam/feeder,
cut as the ingest cuts them), repeated to fill one batch. Two figures per runtime,
each the median of `--repeats` timed batches after one warm-up batch:

- model: the forward of an already preprocessed batch (`_forward`);
- embed: `embed(crops)`, i.e. resize + normalise + forward + head.

It also reports the largest absolute difference between the two runtimes' vectors
for the same crops, the threads each uses, and the 1-minute load average (other
work on the machine lowers every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deerid.core.config import DEFAULT_BACKBONE, Settings  # noqa: E402
from deerid.embed.embedder import clear_embedder_cache, get_embedder  # noqa: E402
from deerid.embed.preprocess import to_batch  # noqa: E402
from deerid.ingest.crop import crop_boxes  # noqa: E402

FEEDER = REPO.parent / "shared" / "data" / "trailcam" / "feeder"
FEEDER_JSON = FEEDER.parent / "feeder.detections.json"


def feeder_crops(n: int, size: int) -> list:
    crops = []
    for entry in json.loads(FEEDER_JSON.read_text())["images"]:
        boxes = [d["bbox"] for d in entry["detections"] if d["category"] == "1"]
        crops += [c.image for c in crop_boxes(FEEDER / entry["file"], boxes, target_size=size) if c.image]
        if len(crops) >= n:
            break
    return [crops[i % len(crops)] for i in range(n)]


def median_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up: first-call allocations, ORT's arena, torch's thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def run(backbone: str, batch: int, repeats: int) -> dict:
    crops = feeder_crops(batch, 240)
    results: dict = {
        "backbone": backbone,
        "batch": batch,
        "repeats": repeats,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min_before": os.getloadavg()[0],
    }
    vectors = {}
    with tempfile.TemporaryDirectory() as data_dir:
        for runtime in ("torch", "onnx"):
            clear_embedder_cache()
            settings = Settings(
                data_dir=data_dir, backbone=backbone, device="cpu", embed_batch_size=batch, runtime=runtime
            )
            start = time.perf_counter()
            embedder = get_embedder(settings)
            load_s = time.perf_counter() - start
            x = to_batch(crops, embedder.input_size, embedder._spec.mean, embedder._spec.std)
            results[runtime] = {
                "model_id": embedder.model_id,
                "input_size": embedder.input_size,
                "first_start_s": round(load_s, 2),
                "model_crops_per_s": round(
                    median_rate(lambda e=embedder, x=x: e._forward(x), batch, repeats), 1
                ),
                "embed_crops_per_s": round(median_rate(lambda e=embedder: e.embed(crops), batch, repeats), 1),
            }
            if runtime == "onnx":
                results[runtime]["threads"] = embedder.threads
                clear_embedder_cache()
                start = time.perf_counter()
                get_embedder(settings)
                results[runtime]["second_start_s"] = round(time.perf_counter() - start, 2)
            vectors[runtime] = embedder.embed(crops)
    results["max_abs_diff"] = float(np.abs(vectors["onnx"] - vectors["torch"]).max())
    results["same_model_id"] = results["torch"]["model_id"] == results["onnx"]["model_id"]
    results["speedup_model"] = round(
        results["onnx"]["model_crops_per_s"] / results["torch"]["model_crops_per_s"], 2
    )
    results["load_avg_1min_after"] = os.getloadavg()[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    results = run(args.backbone, args.batch, args.repeats)
    if args.json:
        print(json.dumps(results))
        return
    print(
        f"{results['backbone']} @ {results['torch']['input_size']}, batch {results['batch']}, "
        f"median of {results['repeats']}; {results['cpu_cores']} cores, "
        f"load {results['load_avg_1min_before']:.1f} -> {results['load_avg_1min_after']:.1f}"
    )
    print(f"{'runtime':<10} {'model crops/s':>14} {'embed crops/s':>14} {'first start s':>14}")
    for runtime in ("torch", "onnx"):
        r = results[runtime]
        print(
            f"{runtime:<10} {r['model_crops_per_s']:>14.1f} {r['embed_crops_per_s']:>14.1f} "
            f"{r['first_start_s']:>14.2f}"
        )
    onnx = results["onnx"]
    print(
        f"onnx: {onnx['threads']} threads, second start {onnx['second_start_s']:.2f} s; "
        f"max abs diff {results['max_abs_diff']:.2e}; same model id: {results['same_model_id']}; "
        f"model speed-up x{results['speedup_model']}"
    )


if __name__ == "__main__":
    main()
