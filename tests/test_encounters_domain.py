"""The encounter rules without a database: events (camera, gap, untrusted times) and
tracks (one-to-one frame linking, gates, a box that fits two tracks)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from deerid.domain.encounters import (
    NO_CAMERA,
    NO_TIME,
    LinkParams,
    Shot,
    TrackBox,
    assign,
    group_events,
    iou,
    link_tracks,
    time_problem,
)

T0 = datetime(2024, 11, 28, 12, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_chain_rule_groups_consecutive_photos_within_the_gap() -> None:
    """Photos 0, 50, 100, 150 s apart chain into one event at gap 60 (each within 60 s of the
    previous one, although the first and last are 150 s apart); 220 s starts a new one."""
    shots = [Shot(i, "cam", at(t)) for i, t in enumerate((0, 50, 100, 150, 220))]
    groups = group_events(shots, 60)
    assert [g.keys for g in groups] == [(0, 1, 2, 3), (4,)]
    assert groups[0].start == at(0) and groups[0].end == at(150) and groups[0].reason is None


@pytest.mark.parametrize(("gap", "expected"), [(10, 3), (30, 2), (60, 1)])
def test_gap_decides_how_many_events(gap: float, expected: int) -> None:
    """Photos 25 s and 55 s apart: three events at a 10 s gap, two at 30 s, one at 60 s."""
    shots = [Shot(1, "cam", at(0)), Shot(2, "cam", at(25)), Shot(3, "cam", at(80))]
    assert len(group_events(shots, gap)) == expected


def test_an_event_never_spans_two_cameras_and_input_order_does_not_matter() -> None:
    """Two cameras firing at the same seconds make two events; shuffled input gives the same events."""
    shots = [Shot(i, "north" if i % 2 else "south", at(i)) for i in range(6)]
    groups = group_events(shots, 60)
    assert sorted(g.keys for g in groups) == [(0, 2, 4), (1, 3, 5)]
    assert all(len({s.camera for s in shots if s.key in g.keys}) == 1 for g in groups)
    for perm in itertools.islice(itertools.permutations(shots), 0, 50, 7):
        assert sorted(g.keys for g in group_events(list(perm), 60)) == [(0, 2, 4), (1, 3, 5)]


def test_photos_without_a_trustworthy_time_or_camera_are_events_of_their_own() -> None:
    """No time, a file time, a flagged EXIF/file disagreement or no camera: alone, with the reason."""
    shots = [
        Shot(1, "cam", at(0)),
        Shot(2, "cam", None),
        Shot(3, "cam", at(1), problem=time_problem(at(1), "file_mtime")),
        Shot(4, "cam", at(2), problem="EXIF and file time disagree: ..."),
        Shot(5, None, at(3)),
        Shot(6, "cam", at(4)),
    ]
    groups = {g.keys: g.reason for g in group_events(shots, 60)}
    assert groups[(1, 6)] is None
    assert groups[(2,)] == NO_TIME
    assert "file's modification time" in groups[(3,)]  # type: ignore[operator]
    assert groups[(4,)].startswith("EXIF and file time disagree")  # type: ignore[union-attr]
    assert groups[(5,)] == NO_CAMERA


def test_time_problem() -> None:
    """EXIF times are trusted, a file time or a missing time is not, a known problem wins."""
    assert time_problem(T0, "exif_datetime_original") is None
    assert time_problem(None, "exif_datetime_original") == NO_TIME
    assert time_problem(T0, "file_mtime") is not None
    assert time_problem(T0, "exif_datetime", "clock wrong") == "clock wrong"


def test_assignment_is_optimal_and_one_to_one() -> None:
    """The Hungarian solver against brute force on random matrices with forbidden (inf) cells:
    as many links as the gates allow, then the lowest total cost; never a row or column twice."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        rows, cols = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.random((rows, cols)) * 3
        cost[rng.random((rows, cols)) < 0.3] = np.inf
        pairs = assign(cost)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        best = None
        n = max(rows, cols)
        for perm in itertools.permutations(range(n)):
            links = [(i, perm[i]) for i in range(rows) if perm[i] < cols and np.isfinite(cost[i, perm[i]])]
            key = (-len(links), round(sum(cost[i, j] for i, j in links), 9))
            best = key if best is None or key < best else best
        assert (-len(pairs), round(sum(cost[i, j] for i, j in pairs), 9)) == best


def box(key: int, x: float, y: float, w: float = 0.1, h: float = 0.2, **kw: object) -> TrackBox:
    return TrackBox(key=key, bbox=(x, y, w, h), **kw)  # type: ignore[arg-type]


def tracks_of(labels: dict[int, int]) -> set[frozenset[int]]:
    out: dict[int, set[int]] = {}
    for key, label in labels.items():
        out.setdefault(label, set()).add(key)
    return {frozenset(v) for v in out.values()}


def test_two_deer_walking_are_two_tracks() -> None:
    """Two deer moving a little between three frames: each keeps its own track."""
    frames = [
        [box(1, 0.10, 0.5), box(2, 0.60, 0.5)],
        [box(3, 0.62, 0.5), box(4, 0.12, 0.5)],
        [box(5, 0.14, 0.5), box(6, 0.64, 0.5)],
    ]
    assert tracks_of(link_tracks(frames)) == {frozenset({1, 4, 5}), frozenset({2, 3, 6})}


def test_two_boxes_of_one_photo_are_never_one_track() -> None:
    """Two boxes almost on top of each other in one frame, one box in the frame before:
    only one of them continues the track, the other starts its own."""
    frames = [[box(1, 0.30, 0.5)], [box(2, 0.30, 0.5), box(3, 0.31, 0.5)]]
    labels = link_tracks(frames)
    assert labels[2] != labels[3]
    assert labels[1] in (labels[2], labels[3])
    for frame in frames:  # and in general: labels within a frame are distinct
        assert len({labels[b.key] for b in frame}) == len(frame)


def test_a_box_overlapping_two_tracks_goes_to_one() -> None:
    """Two deer side by side; next frame one box covers both places (one deer left):
    it joins exactly one of the two tracks, the other track simply ends."""
    frames = [[box(1, 0.30, 0.5), box(2, 0.40, 0.5)], [box(3, 0.30, 0.5, w=0.2)]]
    labels = link_tracks(frames)
    assert [labels[1], labels[2]].count(labels[3]) == 1


def test_a_box_that_fits_nothing_starts_a_new_track() -> None:
    """Far away (beyond the distance gate), another sex partition, or looking too different: a new track."""
    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0], dtype=np.float32)
    far = link_tracks([[box(1, 0.05, 0.5)], [box(2, 0.85, 0.5)]])
    assert far[1] != far[2]
    other_sex = link_tracks([[box(1, 0.3, 0.5, group="doe")], [box(2, 0.3, 0.5, group="fawn")]])
    assert other_sex[1] != other_sex[2]
    # The detector's "unknown" is no sex of its own: it continues a doe's track (the class flickers
    # from frame to frame, and two tracks of one event could never be merged automatically).
    flicker = link_tracks([[box(1, 0.3, 0.5, group="doe")], [box(2, 0.3, 0.5, group="unknown")]])
    assert flicker[1] == flicker[2]
    unlike = link_tracks([[box(1, 0.3, 0.5, vector=a)], [box(2, 0.3, 0.5, vector=b)]])
    assert unlike[1] != unlike[2]
    alike = link_tracks([[box(1, 0.3, 0.5, vector=a)], [box(2, 0.3, 0.5, vector=a)]])
    assert alike[1] == alike[2]


def test_appearance_breaks_a_tie_of_positions() -> None:
    """Two deer cross: positions alone are ambiguous, the vectors say who is who."""
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    frames = [
        [box(1, 0.30, 0.5, vector=a), box(2, 0.36, 0.5, vector=b)],
        [box(3, 0.33, 0.5, vector=b), box(4, 0.34, 0.5, vector=a)],
    ]
    labels = link_tracks(frames, LinkParams(min_cosine=-1.0))
    assert labels[1] == labels[4] and labels[2] == labels[3]


def test_a_track_survives_one_missing_frame_but_not_two() -> None:
    """Hidden for one frame the deer keeps its track; missing for two frames it starts a new one."""
    one_gap = link_tracks([[box(1, 0.3, 0.5)], [box(9, 0.8, 0.1)], [box(2, 0.31, 0.5)]])
    assert one_gap[1] == one_gap[2]
    two_gap = link_tracks([[box(1, 0.3, 0.5)], [box(9, 0.8, 0.1)], [box(8, 0.8, 0.1)], [box(2, 0.31, 0.5)]])
    assert two_gap[1] != two_gap[2]


def test_stored_tracks_are_kept_and_continued() -> None:
    """Re-linking with the boxes' stored tracks changes nothing; a new frame continues them."""
    frames = [[box(1, 0.1, 0.5), box(2, 0.6, 0.5)], [box(3, 0.12, 0.5), box(4, 0.62, 0.5)]]
    first = link_tracks(frames)
    stored = {-1: 101, -2: 102}
    fixed = [[TrackBox(b.key, b.bbox, track=stored[first[b.key]]) for b in f] for f in frames]
    again = link_tracks(fixed)
    assert again == {k: stored[v] for k, v in first.items()}
    extended = link_tracks([*fixed, [box(5, 0.64, 0.5), box(6, 0.14, 0.5)]])
    assert extended[5] == stored[first[2]] and extended[6] == stored[first[1]]


def test_iou() -> None:
    """Overlap of normalised boxes: identical 1, disjoint 0, half-shifted 1/3."""
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0
    assert iou((0, 0, 1, 1), (0.5, 0, 1, 1)) == pytest.approx(1 / 3)


def test_which_camera_took_a_photo(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--camera wins, then the first folder under the ingest root (with --camera-from-folder; a photo
    at the root falls through), then EXIF make/model plus the BodySerialNumber read from the file."""
    from PIL import Image

    from deerid.ingest.photos import read_photo_meta
    from deerid.pipeline.ingest import camera_name

    exif = Image.Exif()
    exif[0x010F] = "MOULTRIE"
    exif[0x0110] = "EDGE"
    exif.get_ifd(0x8769)[0x9003] = "2024:11:28 12:53:46"
    exif.get_ifd(0x8769)[0xA431] = "SN 0042"
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48)).save(path, exif=exif)
    meta = read_photo_meta(path)
    assert meta.camera_serial == "SN 0042" and meta.time_problem is None
    assert camera_name(meta, None) == "MOULTRIE EDGE #SN 0042"
    assert camera_name(meta, "north", relpath="GG/photo.jpg", from_folder=True) == "north"
    assert camera_name(meta, None, relpath="GG/DCIM/photo.jpg", from_folder=True) == "GG"
    assert camera_name(meta, None, relpath="photo.jpg", from_folder=True) == "MOULTRIE EDGE #SN 0042"
    assert camera_name(meta, None, relpath="GG/photo.jpg") == "MOULTRIE EDGE #SN 0042"
    # A camera that writes no make or model (NUL bytes, as some Bushnells do) is its folder.
    blank = replace(meta, camera_make=None, camera_model=None, camera_serial=None)
    assert camera_name(blank, None, relpath="SDZG2/EK1.jpg") == "folder SDZG2"
    assert camera_name(blank, None, relpath="EK1.jpg", root_name="card") == "folder card"
    assert camera_name(blank, None) is None
