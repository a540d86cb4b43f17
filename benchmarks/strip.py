"""Info strip OCR on the 47 real feeder photos: accuracy per camera model and time per photo, in one run.

    python benchmarks/strip.py [--json]

Each photo's strip is read with the product's `read_strip` (Tesseract, docs/strip.md) and compared
with the hand-read ground truth in feeder.detections.json:

- time: the strip time equals `strip_datetime` to the minute (and to the second where the strip
  prints seconds);
- camera name: equals `strip_camera_name`, per photo as read and after `settle_names` (what the
  ingest stores: a thumbnail's misread name replaced by the clearer reading of a taller strip of
  the same EXIF camera); photos whose strip has no name count as right when none is read;
- temperature: equals `strip_temperature_f`.

Rows are per strip layout (EXIF camera model and image size: the 640x360 Moultrie thumbnails
read differently from their 1920x1086 photos). OCR time is wall time per photo on this machine,
every Tesseract call included (median and 95th percentile), and the median CPU time per photo
(this process and its Tesseract children), which other jobs on the cores do not inflate.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deerid.ingest.strip import read_strip, settle_names, tesseract_path  # noqa: E402

FEEDER = REPO.parent / "shared" / "data" / "trailcam" / "feeder"
FEEDER_JSON = FEEDER.parent / "feeder.detections.json"
NOW = datetime(2026, 1, 1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the Tesseract runs): unlike wall time it
    does not grow when other jobs share the cores."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if tesseract_path() is None:
        sys.exit("tesseract is not installed (apt-get install tesseract-ocr, or scripts/setup.sh)")
    truth = {im["file"]: im for im in json.loads(FEEDER_JSON.read_text())["images"]}
    files = sorted(truth)
    readings = {}
    cpu: dict[str, float] = {}
    for f in files:
        before = _cpu_seconds()
        readings[f] = read_strip(FEEDER / f, now=NOW)
        cpu[f] = _cpu_seconds() - before
    settled = dict(
        zip(
            files,
            settle_names(
                [
                    (truth[f]["camera"] or "", readings[f].camera_name, readings[f].text_height_px)
                    for f in files
                ]
            ),
            strict=True,
        )
    )
    groups: dict[str, list[str]] = defaultdict(list)
    for f in files:
        with Image.open(FEEDER / f) as image:
            size = f"{image.width}x{image.height}"
        groups[f"{truth[f]['camera'] or 'SIMMONS (no EXIF)'} {size}"].append(f)

    def row(name: str, members: list[str]) -> dict[str, Any]:
        def time_right(f: str) -> bool:
            got, want = readings[f].captured_at, datetime.fromisoformat(truth[f]["strip_datetime"])
            return got is not None and got.replace(second=0) == want.replace(second=0)

        seconds = [readings[f].seconds for f in members]
        return {
            "layout": name,
            "photos": len(members),
            "time_to_minute": sum(time_right(f) for f in members),
            "time_exact": sum(
                readings[f].captured_at == datetime.fromisoformat(truth[f]["strip_datetime"])
                and readings[f].has_seconds
                for f in members
            ),
            "name_raw": sum(readings[f].camera_name == truth[f]["strip_camera_name"] for f in members),
            "name_settled": sum(settled[f] == truth[f]["strip_camera_name"] for f in members),
            "temperature": sum(readings[f].temperature_f == truth[f]["strip_temperature_f"] for f in members),
            "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(percentile(seconds, 0.95), 3),
            "median_cpu_s": round(statistics.median(cpu[f] for f in members), 3),
        }

    rows = [row(name, groups[name]) for name in sorted(groups)] + [row("all", files)]
    if args.json:
        print(json.dumps({"rows": rows, "misread": _misread(readings, truth, settled)}))
        return
    print(
        f"{'layout':<32} {'photos':>6} {'time (min)':>10} {'time (s)':>8} {'name raw':>8} "
        f"{'name':>6} {'temp':>6} {'median s':>8} {'p95 s':>7} {'cpu s':>6}"
    )
    for r in rows:
        print(
            f"{r['layout']:<32} {r['photos']:>6} {r['time_to_minute']:>10} {r['time_exact']:>8} "
            f"{r['name_raw']:>8} {r['name_settled']:>6} {r['temperature']:>6} "
            f"{r['median_s']:>8} {r['p95_s']:>7} {r['median_cpu_s']:>6}"
        )
    for line in _misread(readings, truth, settled):
        print("misread:", line)


def _misread(readings: dict[str, Any], truth: dict[str, Any], settled: dict[str, str | None]) -> list[str]:
    out = []
    for f, r in readings.items():
        t = truth[f]
        wanted = (
            datetime.fromisoformat(t["strip_datetime"]),
            t["strip_camera_name"],
            t["strip_temperature_f"],
        )
        got = (r.captured_at, settled[f], r.temperature_f)
        if got[0] is None or got[0].replace(second=0) != wanted[0].replace(second=0) or got[1:] != wanted[1:]:
            out.append(
                f"{f}: read {got[0]} {got[1]!r} {got[2]}, "
                f"truth {wanted[0]} {wanted[1]!r} {wanted[2]} ({r.text!r})"
            )
    return out


if __name__ == "__main__":
    main()
