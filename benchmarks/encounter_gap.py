"""How many events, and how pure, for each DEERID_ENCOUNTER_GAP: the measurement behind the 60 s default.

    python benchmarks/encounter_gap.py [--gaps 10,30,60,120,300] [--json]

Uses the grouping code the product runs (`deerid.domain.encounters.group_events`)
on capture times only; no database, no network. Three real sets from ../shared:

- bursts/peru-s90: 111 photos of two Bushnell cameras, 3 shots per trigger. The
  reference is the manifest's burst (one trigger or a run of triggers of one
  visit, checked by eye: the paca's 6 frames 56 s apart are one burst).
  Reported: events, bursts split over several events, events holding more than
  one burst.
- bursts/camtrap-dp-example/metadata: 423 Reconyx media of 4 deployments with a
  species label per photo and an event id, both set by people (Camtrap DP example,
  CC0). Reported: events; impure events (two photos of it share no species: two
  different animals); people's events split over several of ours; our events
  holding more than one of people's.
- trailcam/feeder: 47 photos, 5 cameras told apart as `--camera-from-folder` would
  (the strip's camera name). Reported: events, and events that mix two bucks known
  to be different (`individual` buck-A / buck-B), and how many of the photos of a
  known buck share an event with another photo of him.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from deerid.domain.encounters import Shot, group_events

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BURSTS = SHARED / "bursts"
FEEDER_JSON = SHARED / "trailcam" / "feeder.detections.json"


def peru(gap: float) -> dict[str, Any]:
    rows = list(csv.DictReader((BURSTS / "manifest.csv").open()))
    rows = [r for r in rows if r["file"].startswith("peru-s90/")]
    shots = [
        Shot(i, r["camera"], datetime.strptime(r["datetime_original"], "%Y:%m:%d %H:%M:%S"))
        for i, r in enumerate(rows)
    ]
    events = group_events(shots, gap)
    burst_events: dict[str, set[int]] = defaultdict(set)
    for n, ev in enumerate(events):
        for key in ev.keys:
            burst_events[rows[key]["burst"]].add(n)
    bursts_of_event = [{rows[k]["burst"] for k in ev.keys} for ev in events]
    return {
        "photos": len(rows),
        "bursts": len(burst_events),
        "events": len(events),
        "bursts_split": sum(1 for evs in burst_events.values() if len(evs) > 1),
        "events_merging_bursts": sum(1 for b in bursts_of_event if len(b) > 1),
    }


def camtrap(gap: float) -> dict[str, Any]:
    meta = BURSTS / "camtrap-dp-example" / "metadata"
    media = list(csv.DictReader((meta / "media.csv").open()))
    species: dict[str, set[str]] = defaultdict(set)
    human_event: dict[str, str] = {}
    for obs in csv.DictReader((meta / "observations.csv").open()):
        if not obs["mediaID"]:
            continue
        human_event[obs["mediaID"]] = obs["eventID"]
        if obs["observationType"] == "animal" and obs["scientificName"]:
            species[obs["mediaID"]].add(obs["scientificName"])
    shots = [
        Shot(i, m["deploymentID"], datetime.fromisoformat(m["timestamp"]).replace(tzinfo=None))
        for i, m in enumerate(media)
    ]
    events = group_events(shots, gap)
    impure = 0
    split: dict[str, set[int]] = defaultdict(set)
    merging = 0
    for n, ev in enumerate(events):
        labelled = [species[media[k]["mediaID"]] for k in ev.keys if species[media[k]["mediaID"]]]
        # Two photos with no species in common: two different animals in one event.
        impure += any(not (a & b) for i, a in enumerate(labelled) for b in labelled[i + 1 :])
        refs = {human_event.get(media[k]["mediaID"]) for k in ev.keys} - {None}
        merging += len(refs) > 1
        for ref in refs:
            split[ref].add(n)  # type: ignore[index]
    return {
        "photos": len(media),
        "human_events": len(split),
        "events": len(events),
        "impure_events": impure,
        "human_events_split": sum(1 for evs in split.values() if len(evs) > 1),
        "events_merging_human_events": merging,
    }


def feeder(gap: float) -> dict[str, Any]:
    images = json.loads(FEEDER_JSON.read_text())["images"]
    shots = []
    for i, im in enumerate(images):
        camera = (im.get("strip_camera_name") or "victure").split()[0]
        when = datetime.fromisoformat(im["datetime"]) if im.get("datetime") else None
        shots.append(Shot(i, camera, when))
    events = group_events(shots, gap)
    individuals = [{d["individual"] for d in im["detections"] if d.get("individual")} for im in images]
    mixed = sum(1 for ev in events if len(set().union(*(individuals[k] for k in ev.keys))) > 1)
    together = 0
    for ev in events:
        for k in ev.keys:
            for name in individuals[k]:
                together += any(name in individuals[o] for o in ev.keys if o != k)
    return {
        "photos": len(images),
        "events": len(events),
        "events_mixing_known_bucks": mixed,
        "buck_photos_sharing_an_event": together,
        "buck_photos": sum(len(s) for s in individuals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", default="10,30,60,120,300")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    gaps = [float(g) for g in args.gaps.split(",")]
    results = [{"gap_s": g, "peru": peru(g), "camtrap": camtrap(g), "feeder": feeder(g)} for g in gaps]
    if args.json:
        print(json.dumps(results))
        return 0
    p0, c0, f0 = results[0]["peru"], results[0]["camtrap"], results[0]["feeder"]
    print(
        f"| gap (s) | peru-s90 events ({p0['photos']} photos, {p0['bursts']} bursts) | bursts split "
        f"| events merging bursts | camtrap-dp events ({c0['photos']} photos, {c0['human_events']} "
        f"events by people) | impure | people's events split | events merging people's "
        f"| feeder events ({f0['photos']} photos) | mixing buck-A/B "
        f"| buck photos sharing an event (of {f0['buck_photos']}) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        p, c, f = r["peru"], r["camtrap"], r["feeder"]
        print(
            f"| {r['gap_s']:g} | {p['events']} | {p['bursts_split']} | {p['events_merging_bursts']} "
            f"| {c['events']} | {c['impure_events']} | {c['human_events_split']} "
            f"| {c['events_merging_human_events']} | {f['events']} | {f['events_mixing_known_bucks']} "
            f"| {f['buck_photos_sharing_an_event']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
