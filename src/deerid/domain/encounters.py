"""Encounters, free of any database: events (photos of one camera close in time)
and tracks (one animal's boxes through an event).

An *event* is what a trail camera records for one visit: photos of one camera
whose capture times are at most `gap_s` apart, chained (a photo joins the event
when it is within the gap of the previous one). An event never spans two
cameras. A photo whose time cannot be trusted, or whose camera is unknown, is
an event of its own, with the reason, because grouping it would be a guess.

A *track* is one animal through an event: boxes are linked from frame to frame
as a one-to-one assignment between consecutive frames (Hungarian method), so two
boxes of one photo are never in one track and a box that could continue two
tracks continues one. The cost of a link is box overlap, centre distance and
appearance; a gate forbids links that are too far or look too different, and a
box that fits nothing starts a new track. A track may skip one frame (the animal
hidden behind another for a shot).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

# --- events ---

UNTRUSTED_SOURCES = {"file_mtime": "capture time is the file's modification time, not the camera's"}
NO_TIME = "no capture time"
NO_CAMERA = "camera unknown"


@dataclass(frozen=True)
class Shot:
    """One photo as event grouping sees it."""

    key: int  # image id
    camera: Hashable | None
    time: datetime | None
    problem: str | None = None  # why its time cannot be trusted (see `time_problem`)


@dataclass(frozen=True)
class EventGroup:
    keys: tuple[int, ...]  # in capture order
    camera: Hashable | None
    start: datetime | None
    end: datetime | None
    reason: str | None  # why this photo is an event of its own; None for a gap-grouped event


def time_problem(time: datetime | None, source: str | None, problem: str | None = None) -> str | None:
    """Why a photo's capture time cannot group it with others, or None when it can."""
    if problem:
        return problem
    if time is None:
        return NO_TIME
    return UNTRUSTED_SOURCES.get(source or "")


def group_events(shots: Sequence[Shot], gap_s: float) -> list[EventGroup]:
    """Events of `shots`: per camera, consecutive photos at most `gap_s` apart.

    Deterministic: photos are taken in (time, key) order, and the groups come
    out ordered by (camera, start)."""
    alone: list[EventGroup] = []
    by_camera: dict[Hashable, list[Shot]] = {}
    for shot in shots:
        reason = shot.problem or (NO_TIME if shot.time is None else None)
        if reason is None and shot.camera is None:
            reason = NO_CAMERA
        if reason is not None:
            alone.append(EventGroup((shot.key,), shot.camera, shot.time, shot.time, reason))
        else:
            by_camera.setdefault(shot.camera, []).append(shot)
    groups: list[EventGroup] = []
    for camera in sorted(by_camera, key=str):
        ordered = sorted(by_camera[camera], key=lambda s: (s.time, s.key))
        run: list[Shot] = [ordered[0]]
        for shot in ordered[1:]:
            if (shot.time - run[-1].time).total_seconds() <= gap_s:  # type: ignore[operator]
                run.append(shot)
            else:
                groups.append(_event(run))
                run = [shot]
        groups.append(_event(run))
    return groups + sorted(alone, key=lambda g: g.keys)


def _event(run: list[Shot]) -> EventGroup:
    return EventGroup(tuple(s.key for s in run), run[0].camera, run[0].time, run[-1].time, None)


# --- tracks ---


WILDCARD = "unknown"


@dataclass(frozen=True)
class TrackBox:
    """One box in one frame of an event."""

    key: int  # detection id
    bbox: tuple[float, float, float, float]  # normalised (x_min, y_min, w, h)
    aspect: float = 1.0  # image width / height: distances are measured in pixel proportions
    # Boxes link only within one group (the sex partition). WILDCARD links with any group: the
    # detector often calls one animal "unknown" in one frame and "doe" in the next, and two tracks
    # of one event can never become one deer, so a split there could never be mended automatically.
    group: Hashable = None
    vector: np.ndarray | None = None  # L2-normalised embedding
    track: int | None = None  # the stored track this box already belongs to


@dataclass(frozen=True)
class LinkParams:
    max_distance: float = 1.0
    """Centre distance, in mean box diagonals, beyond which two boxes never link."""
    min_cosine: float = 0.3
    """Appearance below which two boxes never link (when both have vectors)."""
    w_distance: float = 0.5
    w_appearance: float = 1.0
    skip_penalty: float = 0.3
    """Added to the cost of a link that skips one frame."""
    max_skip: int = 1
    """Frames a track may miss and still continue."""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: TrackBox, b: TrackBox) -> float:
    """Distance between the box centres in units of the boxes' mean diagonal (pixel proportions)."""
    aspect = a.aspect
    dx = ((a.bbox[0] + a.bbox[2] / 2) - (b.bbox[0] + b.bbox[2] / 2)) * aspect
    dy = (a.bbox[1] + a.bbox[3] / 2) - (b.bbox[1] + b.bbox[3] / 2)
    diag = (math.hypot(a.bbox[2] * aspect, a.bbox[3]) + math.hypot(b.bbox[2] * aspect, b.bbox[3])) / 2
    return math.hypot(dx, dy) / diag if diag > 0 else math.inf


def link_cost(a: TrackBox, b: TrackBox, params: LinkParams = LinkParams()) -> float:
    """Cost of saying `b` continues `a`'s track; inf when the gate forbids it."""
    if a.group != b.group and WILDCARD not in (a.group, b.group):
        return math.inf
    dist = centre_distance(a, b)
    if dist > params.max_distance:
        return math.inf
    cost = (1.0 - iou(a.bbox, b.bbox)) + params.w_distance * dist
    if a.vector is not None and b.vector is not None:
        cosine = float(np.dot(a.vector, b.vector))
        if cosine < params.min_cosine:
            return math.inf
        cost += params.w_appearance * (1.0 - cosine)
    return cost


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment of rows to columns; pairs with an infinite cost are dropped.

    The Hungarian method (Kuhn-Munkres with potentials, O(n³)) on a square matrix
    padded with a large finite cost, so a row may stay unassigned."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    finite = cost[np.isfinite(cost)]
    big = (float(finite.max()) if finite.size else 0.0) * (rows + cols) + 1.0
    n = max(rows, cols)
    c = np.full((n, n), big)
    c[:rows, :cols] = np.where(np.isfinite(cost), cost, big)
    # e-maxx formulation, 1-based with a virtual column 0.
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=int)  # p[j]: row matched to column j
    way = np.zeros(n + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = np.inf
            j1 = 0
            for j in range(1, n + 1):
                if used[j]:
                    continue
                cur = c[i0 - 1, j - 1] - u[i0] - v[j]
                if cur < minv[j]:
                    minv[j] = cur
                    way[j] = j0
                if minv[j] < delta:
                    delta = minv[j]
                    j1 = j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    pairs = []
    for j in range(1, n + 1):
        i = p[j] - 1
        if i < rows and j - 1 < cols and np.isfinite(cost[i, j - 1]):
            pairs.append((i, j - 1))
    return sorted(pairs)


def link_tracks(frames: Sequence[Sequence[TrackBox]], params: LinkParams = LinkParams()) -> dict[int, int]:
    """Track label of every box, frames given in capture order.

    Boxes that already belong to a stored track keep it (their label is that
    track id), so re-running adds nothing and new boxes of an extended event
    continue the stored tracks. New tracks get negative labels -1, -2, …
    in the order they start."""
    labels: dict[int, int] = {}
    last: dict[int, tuple[TrackBox, int]] = {}  # track label -> (its latest box, frame index)
    next_new = -1
    for t, frame in enumerate(frames):
        fixed = [b for b in frame if b.track is not None]
        free = sorted((b for b in frame if b.track is None), key=lambda b: b.key)
        taken = {b.track for b in fixed}
        open_tracks = sorted(
            label
            for label, (_, seen) in last.items()
            if t - seen <= params.max_skip + 1 and label not in taken
        )
        cost = np.full((len(open_tracks), len(free)), np.inf)
        for i, label in enumerate(open_tracks):
            prev, seen = last[label]
            for j, box in enumerate(free):
                cost[i, j] = link_cost(prev, box, params) + params.skip_penalty * (t - seen - 1)
        linked = {j: open_tracks[i] for i, j in assign(cost)}
        for j, box in enumerate(free):
            if j in linked:
                labels[box.key] = linked[j]
            else:
                labels[box.key] = next_new
                next_new -= 1
        for box in fixed:
            labels[box.key] = box.track  # type: ignore[assignment]
        for box in frame:
            last[labels[box.key]] = (box, t)
    return labels
