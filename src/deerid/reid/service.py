"""Re-identify stored deer detections: embed what has no vector yet, then match.

Each detection is assigned in its own short transaction that holds the lock
of its sex partition, so concurrent workers never found two profiles for one
animal, and a worker killed halfway loses at most the detection it was on
(which stays `pending` and is picked up by the next `deerid reid --all`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain
from typing import cast
from uuid import UUID

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from deerid.db.tables import Assignment, Detection, DetectionStatus
from deerid.domain.classes import Sex
from deerid.domain.matching import decide
from deerid.embed.protocol import EmbedderLike
from deerid.embed.resize import squash
from deerid.errors import NotFound
from deerid.ingest.crop import iter_crops, prefetch
from deerid.store import deer as deer_store
from deerid.store import detections as det_store
from deerid.store import encounters as enc_store
from deerid.store import photos as photo_store

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    MATCHED = "matched"  # joined an existing deer: by matching, or its track's deer (`via_track`)
    NEW_DEER = "new_deer"
    ALREADY_ASSIGNED = "already_assigned"
    NOT_DEER = "not_deer"
    TOO_SMALL = "too_small"
    FAILED = "failed"


@dataclass(frozen=True)
class ReidResult:
    detection_id: int
    outcome: Outcome
    deer_id: UUID | None = None
    similarity: float | None = None
    error: str | None = None
    via_track: bool = False  # joined the deer its own track already had


@dataclass
class ReidSummary:
    results: list[ReidResult] = field(default_factory=list)
    embed_seconds: float = 0.0  # crop + embed + store vectors
    assign_seconds: float = 0.0  # nearest-neighbour search + decision + profile update, committed

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def as_dict(self) -> dict[str, int]:
        return {o.value: self.count(o) for o in Outcome}


def embed_detections(
    factory: sessionmaker[Session],
    detection_ids: Sequence[int],
    embedder: EmbedderLike,
    *,
    min_size: int,
    batch_size: int = 16,
    force: bool = False,
    mark_failed: bool = True,
    progress: Callable[[int], None] | None = None,
    decode_ahead: int | None = None,
) -> dict[int, str]:
    """Give each detection an embedding of the embedder's model; return {id: error} for failures.

    Crops are read photo by photo (one decode per photo for all its boxes) and
    embedded in batches; each batch is committed on its own so an interrupted
    run keeps what it finished. One decode thread reads, crops and resizes the
    next photos while a batch is embedded, at most `decode_ahead` crops ahead
    (default: two batches), and one writer thread stores the previous batch;
    `decode_ahead=0` does all of it in this thread, one step after the other."""
    with factory() as session:
        items = det_store.work_items(session, detection_ids)
    todo = [i for i in items if force or not i.has_embedding or i.model_id != embedder.model_id]
    # By image, not path: a reused path (another photo in its place) must not mix two images (F14).
    by_photo: dict[int, list[det_store.WorkItem]] = defaultdict(list)
    for item in todo:
        by_photo[item.image_id].append(item)

    errors: dict[int, str] = {}
    ahead = 2 * batch_size if decode_ahead is None else decode_ahead
    batches = _BatchStore(factory, embedder, progress, threaded=ahead > 0)
    cut = _squashed_crops(by_photo.values(), embedder.input_size, min_size)
    try:
        # Held at once: the batch being embedded, `ahead` squashed crops (input size, not box
        # size) and the photo the decode thread is on; never all of a photo's crops (F30).
        with closing(prefetch(cut, ahead)) as crops:
            for item, pixels, error in crops:
                if pixels is None:
                    errors[item.detection_id] = error or "no crop"
                    continue
                batches.add(item.detection_id, pixels)
                if batches.size >= batch_size:
                    batches.flush()
        batches.flush()
        batches.wait()
    finally:
        batches.close()  # an interrupted run still commits the batch it handed over

    if errors and mark_failed:
        with factory() as session, session.begin():
            for det_id, reason in errors.items():
                det_store.mark_failed(session, det_id, reason)
    return errors


class _BatchStore:
    """Embeds the crops gathered so far as one batch and commits it in its own transaction.

    Storing a batch (an HNSW insert per vector) costs about as much as decoding it; with
    `threaded`, a writer thread commits batch k while batch k+1 is embedded. One batch is in
    its hands at a time, so batches are still committed one by one, in order."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        embedder: EmbedderLike,
        progress: Callable[[int], None] | None,
        *,
        threaded: bool,
    ) -> None:
        self._factory = factory
        self._embedder = embedder
        self._progress = progress
        self._ids: list[int] = []
        self._crops: list[np.ndarray] = []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="deerid-store") if threaded else None
        self._stored: Future[int] | None = None

    @property
    def size(self) -> int:
        return len(self._ids)

    def add(self, detection_id: int, pixels: np.ndarray) -> None:
        self._ids.append(detection_id)
        self._crops.append(pixels)

    def _store(self, ids: list[int], vectors: np.ndarray) -> int:
        with self._factory() as session, session.begin():
            for det_id, vec in zip(ids, vectors, strict=True):
                det_store.set_embedding(session, det_id, vec, self._embedder.model_id)
        return len(ids)

    def _done(self, count: int) -> None:
        if self._progress is not None:
            self._progress(count)

    def wait(self) -> None:
        """Until the batch in the writer's hands is committed; a failed commit raises here."""
        if self._stored is not None:
            done, self._stored = self._stored, None
            self._done(done.result())

    def flush(self) -> None:
        if not self._ids:
            return
        vectors = self._embedder.embed(self._crops)
        ids = self._ids
        self._ids, self._crops = [], []
        self.wait()
        if self._writer is None:
            self._done(self._store(ids, vectors))
        else:
            self._stored = self._writer.submit(self._store, ids, vectors)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)


def _squashed_crops(
    photos: Iterable[list[det_store.WorkItem]], size: int, min_size: int
) -> Iterator[tuple[det_store.WorkItem, np.ndarray | None, str | None]]:
    """(item, its crop squashed to `size`, None) or (item, None, why not) for every item, photo by
    photo, in order. Runs in `embed_detections`' decode thread: a bad photo fails its own boxes
    and the next photo is read."""
    for photo_items in photos:
        path = photo_items[0].image_path
        try:
            first = photo_items[0]
            if first.image_sha256 is not None:  # never embed another photo found at the path
                photo_store.verify_file(path, first.image_sha256, first.file_size, first.file_mtime)
            # Crops are cut one at a time from one decode, so a photo with thousands of boxes
            # never holds all their crops (F30). The first `next` opens, checks and decodes.
            crops = iter_crops(path, [i.bbox for i in photo_items], min_size, size)
            first_crop = next(crops)
        except (OSError, ValueError) as exc:  # PhotoReadError names the photo and the reason
            for item in photo_items:
                yield item, None, str(exc)
            continue
        with closing(crops):
            for item, crop in zip(photo_items, chain([first_crop], crops), strict=True):
                if crop.image is None:
                    yield item, None, "crop smaller than MIN_CROP_SIZE"
                else:
                    yield item, squash(crop.image, size), None


def assign_detection(
    factory: sessionmaker[Session],
    detection_id: int,
    *,
    threshold: float | None,
    model_id: str,
    across_sites: bool = False,
) -> ReidResult:
    """Give one embedded detection a deer of its sex: its track's deer, a matching deer, or a new one.

    A detection in a track joins the deer another box of its track already has
    (assignment "track"). Otherwise the whole track is matched: its score against
    a deer is the best cosine between any of the track's crops and any of the
    deer's sightings. Deer holding another track of the same event (or a box of
    the same photo) are never candidates: animals seen together are different
    animals. `threshold` None means no automatic merges: the track founds a new
    deer, which waits for review. Candidates come from the detection's own site
    unless `across_sites`."""
    with factory() as session, session.begin():
        det = session.get(Detection, detection_id)
        if det is None:
            raise NotFound(f"no detection with id {detection_id}")
        if det.deer_id is not None:
            return ReidResult(detection_id, Outcome.ALREADY_ASSIGNED, det.deer_id, det.similarity)
        if det.sex is None:
            return ReidResult(detection_id, Outcome.NOT_DEER)
        if det.status is DetectionStatus.TOO_SMALL:
            return ReidResult(detection_id, Outcome.TOO_SMALL)
        if det.embedding is None or det.model_id != model_id:
            return ReidResult(
                detection_id, Outcome.FAILED, error=det.error or "no embedding of the active model"
            )

        sex = Sex(det.sex)
        site = None if across_sites else det.site
        deer_store.lock_partition(session, sex, site)
        # Another worker may have assigned it while this one waited for the lock.
        session.refresh(det)
        if det.deer_id is not None:
            return ReidResult(detection_id, Outcome.ALREADY_ASSIGNED, det.deer_id, det.similarity)
        when = det_store.now()

        if det.track_id is not None:
            mate = enc_store.track_deer(session, det.track_id)
            if mate is not None:
                deer_id, via = mate
                deer_store.assign(
                    session,
                    det.id,
                    deer_id,
                    similarity=None,
                    via_detection_id=via,
                    assignment=Assignment.TRACK,
                    when=when,
                )
                deer_store.add_sighting(session, deer_id, det.id)
                return ReidResult(detection_id, Outcome.MATCHED, deer_id, None, via_track=True)
            vectors = enc_store.track_vectors(session, det.track_id, model_id)
            excluded = enc_store.deer_in_event(session, det.image_id, except_track=det.track_id)
        else:  # stored before events existed: matched on its own
            vectors = [np.asarray(det.embedding, dtype=np.float32)]
            excluded = deer_store.deer_in_image(session, det.image_id, except_detection=det.id)

        candidates = [
            cand
            for vector in vectors
            for cand in deer_store.nearest_sightings(
                session, vector, sex=sex, model_id=model_id, exclude_detection=det.id, site=site
            )
        ]
        # Without a threshold nothing joins, but the nearest deer is still recorded for review.
        decision = decide(candidates, math.inf if threshold is None else threshold, excluded_deer=excluded)
        if decision.deer_id is not None:
            deer_store.assign(
                session,
                det.id,
                decision.deer_id,
                similarity=decision.similarity,
                via_detection_id=decision.via_detection_id,
                assignment=Assignment.MATCHED,
                when=when,
            )
            deer_store.add_sighting(session, decision.deer_id, det.id)
            return ReidResult(detection_id, Outcome.MATCHED, decision.deer_id, decision.similarity)

        # A founding sighting records how close it came to the nearest other
        # deer: the review queue looks for new profiles that nearly matched.
        deer_id = deer_store.create_deer(session, sex, model_id)
        deer_store.assign(
            session,
            det.id,
            deer_id,
            similarity=decision.similarity,
            via_detection_id=decision.via_detection_id,
            assignment=Assignment.NEW,
            when=when,
        )
        deer_store.add_sighting(session, deer_id, det.id)
        return ReidResult(detection_id, Outcome.NEW_DEER, deer_id, decision.similarity)


def prepare_tracks(
    factory: sessionmaker[Session],
    detection_ids: Sequence[int],
    embedder: EmbedderLike,
    *,
    min_size: int,
    batch_size: int = 16,
) -> dict[int, str]:
    """Embed every waiting deer box of these detections' events, then link each event's tracks.

    A track is matched as a whole, so all of its boxes must be embedded and
    linked before the first of them is assigned; a worker given one detection
    does this for its whole event. Returns {id: error} for boxes that failed."""
    with factory() as session:
        events = enc_store.events_of_detections(session, detection_ids)
        boxes = enc_store.pending_deer_boxes(session, events) if events else []
    errors = embed_detections(factory, boxes, embedder, min_size=min_size, batch_size=batch_size)
    for event_id in events:
        with factory() as session, session.begin():
            enc_store.build_tracks(session, event_id, embedder.model_id)
    return errors


def reidentify(
    factory: sessionmaker[Session],
    detection_ids: Iterable[int],
    embedder: EmbedderLike,
    *,
    threshold: float | None,
    min_size: int,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    across_sites: bool = False,
) -> ReidSummary:
    """Embed (where needed), link tracks, and assign each detection, in capture-time order."""
    ids = list(detection_ids)
    summary = ReidSummary()
    if not ids:
        return summary
    started = time.perf_counter()
    errors = embed_detections(factory, ids, embedder, min_size=min_size, batch_size=batch_size)
    errors.update(prepare_tracks(factory, ids, embedder, min_size=min_size, batch_size=batch_size))
    summary.embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with factory() as session:
        ordered = [item.detection_id for item in det_store.work_items(session, ids)]
    missing = set(ids) - set(ordered)
    if missing:
        raise NotFound(f"no detection with id {min(missing)}")
    for det_id in ordered:
        if det_id in errors:
            summary.results.append(ReidResult(det_id, Outcome.FAILED, error=errors[det_id]))
        else:
            summary.results.append(
                assign_detection(
                    factory,
                    det_id,
                    threshold=threshold,
                    model_id=embedder.model_id,
                    across_sites=across_sites,
                )
            )
        if progress is not None:
            progress(1)
    summary.assign_seconds = time.perf_counter() - started
    return summary


def unassign(session: Session, detection_ids: Sequence[int]) -> None:
    """Take detections out of their deer (before a forced re-run); emptied deer are deleted."""
    held = session.execute(
        sa.select(Detection.deer_id).where(Detection.id.in_(detection_ids), Detection.deer_id.is_not(None))
    ).scalars()
    deer_ids = set(cast("Iterable[UUID]", held))  # NULL deer ids are filtered out
    session.execute(
        sa.update(Detection)
        .where(Detection.id.in_(detection_ids), Detection.status == DetectionStatus.ASSIGNED)
        .values(
            deer_id=None,
            similarity=None,
            matched_detection_id=None,
            assignment=None,
            status=DetectionStatus.PENDING,
        )
    )
    for deer_id in deer_ids:
        deer_store.recompute_profile(session, deer_id)
