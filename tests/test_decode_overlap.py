"""Decoding overlapped with inference: `prefetch` (the decode thread) keeps order, stays a bounded
number of crops ahead, hands errors over in order and stops when its consumer stops; and
`embed_detections` with the decode and writer threads stores exactly what the in-line path stores,
keeps going past a bad photo, and keeps the batches it committed when a later one fails."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Detection, Image
from deerid.ingest.crop import iter_crops, prefetch
from deerid.pipeline.ingest import ingest
from deerid.reid.service import embed_detections
from support.cards import feeder_card
from support.paths import FEEDER, FEEDER_JSON

PHOTO = FEEDER / "IMG_2257.JPG"


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "deerid-decode"]


def _many_boxes(n: int) -> list[list[float]]:
    rng = np.random.default_rng(3)
    return [[float(x), float(y), 0.3, 0.3] for x, y in rng.uniform(0.0, 0.7, size=(n, 2))]


def test_prefetch_keeps_order_and_stays_a_bounded_number_ahead() -> None:
    """240 real crops of one photo through a slow consumer: they arrive in order, and the decode
    thread is never more than `ahead` crops (+ the one in its hand) ahead of what was taken. An
    unbounded queue would run all 240 ahead while the consumer sleeps."""
    boxes = _many_boxes(240)
    produced = 0
    lead: list[int] = []

    def crops() -> Iterator[tuple[int, object]]:
        nonlocal produced
        for index, crop in enumerate(iter_crops(PHOTO, boxes, target_size=64)):
            produced += 1
            yield index, crop.box

    expected = [c.box for c in iter_crops(PHOTO, boxes, target_size=64)]
    got = []
    with closing(prefetch(crops(), ahead=8)) as ahead:
        for taken, (index, box) in enumerate(ahead, start=1):
            if taken % 40 == 1:
                time.sleep(0.2)  # a batch being embedded: the decode thread runs ahead meanwhile
            lead.append(produced - taken)
            got.append((index, box))
    assert [i for i, _ in got] == list(range(240))
    assert [b for _, b in got] == expected
    assert max(lead) <= 8 + 1, max(lead)
    assert max(lead) >= 8  # it did run ahead: the overlap is real
    assert not _decode_threads()


def test_prefetch_hands_an_error_over_after_the_items_before_it() -> None:
    """A photo that fails in the decode thread: the items before it arrive, then its exception is
    raised in the consumer's thread (not lost in the thread, not raised early)."""

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("IMG_X.JPG is truncated")

    got = []
    with pytest.raises(OSError, match="truncated"):
        for item in prefetch(items(), ahead=4):
            got.append(item)
    assert got == [1, 2]
    assert not _decode_threads()


def test_closing_the_consumer_stops_the_decode_thread_and_closes_the_photo() -> None:
    """Stopping after two crops (an error while embedding, Ctrl-C) ends the decode thread, and the
    photo iterator it was running is closed in that thread (its `finally` ran), not left open."""
    closed = threading.Event()

    def crops() -> Iterator[object]:
        try:
            yield from iter_crops(PHOTO, _many_boxes(100), target_size=64)
        finally:
            closed.set()

    stream = prefetch(crops(), ahead=4)
    assert next(stream).image is not None
    assert next(stream).image is not None
    stream.close()
    assert closed.is_set()
    assert not _decode_threads()


def test_ahead_zero_runs_in_the_callers_thread() -> None:
    """`ahead=0` is the in-line path: no thread is started and the items are produced by the caller."""
    threads = []

    def items() -> Iterator[int]:
        for i in range(3):
            threads.append(threading.current_thread())
            yield i

    assert list(prefetch(items(), ahead=0)) == [0, 1, 2]
    assert threads == [threading.current_thread()] * 3


@pytest.fixture
def stored(deerid: Deerid, tmp_path: Path):
    """Eight real feeder photos with their boxes ingested (not embedded); the deer box ids. The
    card holds copies in the test's tmp dir, not links: ingest stores the resolved path, and one
    test replaces a stored photo, which must never be the shared one."""
    names = [e["file"] for e in json.loads(FEEDER_JSON.read_text())["images"][:8]]
    linked, md = feeder_card(tmp_path, names)
    card = tmp_path / "copies"
    card.mkdir()
    for name in names:
        shutil.copyfile(linked / name, card / name)
    ingest(deerid, card, md, reidentify=False)
    factory = deerid.sessions
    with factory() as session:
        ids = list(session.execute(sa.select(Detection.id).where(Detection.sex.is_not(None))).scalars())
    assert len(ids) >= 8
    return factory, ids


def _vectors(factory, ids) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    with factory() as session:
        rows = session.execute(sa.select(Detection.id, Detection.embedding).where(Detection.id.in_(ids)))
        return {i: np.asarray(v) for i, v in rows if v is not None}


def test_overlapped_embedding_stores_what_the_in_line_path_stores(
    settings: Settings, deerid: Deerid, stored, tmp_path: Path
) -> None:
    """Real photos, real model, real database: with the decode and writer threads every deer box
    gets exactly the vector (bit for bit) and the errors the in-line path gives, and one of the
    photos replaced on disk after ingest (F14) fails only its own boxes."""
    factory, ids = stored
    embedder = deerid.embedder()
    with factory() as session:
        victim = session.execute(
            sa.select(Detection.image_id).where(Detection.id.in_(ids)).limit(1)
        ).scalar_one()
        victim_ids = set(
            session.execute(
                sa.select(Detection.id).where(Detection.id.in_(ids), Detection.image_id == victim)
            ).scalars()
        )
        victim_path = Path(session.get(Image, victim).path)
    assert victim_path.is_relative_to(tmp_path.resolve()) and not victim_path.is_symlink()  # not shared
    other = json.loads(FEEDER_JSON.read_text())["images"][20]["file"]  # not one of the eight
    shutil.copyfile(FEEDER / other, victim_path)

    kwargs = {"min_size": settings.min_crop_size, "batch_size": 4, "force": True, "mark_failed": False}
    inline_errors = embed_detections(factory, ids, embedder, decode_ahead=0, **kwargs)
    inline = _vectors(factory, ids)
    with factory() as session, session.begin():
        session.execute(
            sa.update(Detection).where(Detection.id.in_(ids)).values(embedding=None, model_id=None)
        )
    progress: list[int] = []
    overlap_errors = embed_detections(factory, ids, embedder, progress=progress.append, **kwargs)
    overlap = _vectors(factory, ids)

    assert overlap_errors == inline_errors
    assert victim_ids <= set(overlap_errors)
    assert all("different photo" in overlap_errors[i] for i in victim_ids)
    assert set(overlap) == set(inline) == set(ids) - set(overlap_errors)
    assert len(overlap) >= 6
    for det_id, vector in inline.items():
        np.testing.assert_array_equal(overlap[det_id], vector)
    assert sum(progress) == len(overlap) and max(progress) <= 4
    assert not _decode_threads()


class FailingEmbedder:
    """The real embedder, failing on its second batch (a crash mid-run, e.g. out of memory)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.model_id, self.input_size = inner, inner.model_id, inner.input_size
        self.calls = 0

    def embed(self, crops):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 2:
            raise MemoryError("out of memory in batch 2")
        return self.inner.embed(crops)


def test_a_crash_mid_run_keeps_the_committed_batches_and_leaves_no_threads(
    settings: Settings, deerid: Deerid, stored
) -> None:
    """Batch 1 is handed to the writer thread, batch 2 crashes: the error reaches the caller, batch 1
    is committed (an interrupted run keeps what it finished) and batch 2 is not; no decode or
    writer thread is left running."""
    factory, ids = stored
    embedder = FailingEmbedder(deerid.embedder())
    with pytest.raises(MemoryError, match="batch 2"):
        embed_detections(factory, ids, embedder, min_size=settings.min_crop_size, batch_size=3)
    assert len(_vectors(factory, ids)) == 3
    assert not _decode_threads()
    assert not [t for t in threading.enumerate() if t.name.startswith("deerid-store")]
