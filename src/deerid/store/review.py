"""The review queue over the database: a snapshot for `deerid.domain.review`, and the answers.

The snapshot is every embedded sighting of the active model with the deer holding it.
What never changes for a detection (its vector, and therefore which sightings are its
nearest) is cached per process in a `ReviewCache`; what people change (which deer holds
which sighting, sexes, decisions) is read fresh on every call, so a screen is never stale.

Rules the snapshot adds to the domain's:
- two deer holding boxes of one photo, or different tracks of one event, are never shown
  as a pair (animals seen together are different animals);
- a doe and a buck are never shown as a pair; a fawn or an unknown can be anything;
- a pair answered "none" stays decided through later merges: it is kept as two anchor
  detections, and holds for whichever deer hold them now.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Deer, Detection, Merge, ReviewChoice, ReviewScreen
from deerid.domain.classes import Sex
from deerid.domain.review import DEFAULT_K, Probability, ReviewGraph, Screen, comparable_pairs, uncalibrated
from deerid.errors import Conflict, NotFound
from deerid.store import curation
from deerid.store.detections import now

_SEX_CODE = {Sex.DOE: 1, Sex.BUCK: 2}  # fawn and unknown: 0, compatible with anything


class ReviewConflict(Conflict):
    """The screen a person answered has changed underneath (a deer merged elsewhere, deleted).

    Carries what is true now, so the client can show it; nothing was written."""

    def __init__(self, message: str, current: dict[str, Any]) -> None:
        super().__init__(message)
        self.current = current


@dataclass
class _Pairs:
    ids: np.ndarray  # detection ids, sorted: the rows of the snapshot
    vectors: np.ndarray
    i: np.ndarray
    j: np.ndarray
    sim: np.ndarray  # sorted best first
    sites: np.ndarray | None  # the rows' sites the pairs were kept within; None: across sites


@dataclass
class ReviewCache:
    """Per process: vectors and nearest-sighting pairs of one model (per site, or across sites),
    rebuilt when sightings are added or a camera changes site."""

    _pairs: dict[tuple[str, bool], _Pairs] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ranked: dict[tuple[str, bool], dict[str, Any]] = field(default_factory=dict)

    def memo(self, model_id: str, across_sites: bool = False) -> dict[str, Any]:
        """Where a snapshot keeps its ranked candidates for the next one (see ReviewGraph.memo)."""
        return self._ranked.setdefault((model_id, across_sites), {})

    def forget_ranked(self) -> None:
        """Drop the ranked candidates kept between snapshots, as a merge does (benchmarks)."""
        self._ranked.clear()

    def pairs(self, session: Session, model_id: str, ids: np.ndarray, sites: np.ndarray | None) -> _Pairs:
        """`sites` (one per row) keeps pairs within a site; None compares across sites."""
        if sites is not None and (sites == sites[:1]).all():
            # One site (the usual case): its pairs are the across-sites pairs, built once for both.
            sites = None
        key = (model_id, sites is None)
        with self._lock:
            cached = self._pairs.get(key)
            if cached is not None and np.array_equal(cached.ids, ids) and _same(cached.sites, sites):
                return cached
            # Vectors never change: the other scope's copy serves as well.
            reuse = cached or self._pairs.get((model_id, sites is not None))
            vectors = _load_vectors(session, ids, reuse)
            built = _build_pairs(ids, vectors, sites)
            self._pairs[key] = built
            return built


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _load_vectors(session: Session, ids: np.ndarray, cached: _Pairs | None) -> np.ndarray:
    """Vectors of `ids` in order; those already cached are not read again (they never change)."""
    out = np.zeros((len(ids), 512), dtype=np.float32)
    have: dict[int, int] = {}
    if cached is not None:
        have = {int(d): r for r, d in enumerate(cached.ids)}
    missing = [int(d) for d in ids if int(d) not in have]
    fetched: dict[int, np.ndarray] = {}
    for start in range(0, len(missing), 5_000):
        chunk = missing[start : start + 5_000]
        for det_id, emb in session.execute(
            sa.select(Detection.id, Detection.embedding).where(Detection.id.in_(chunk))
        ):
            fetched[det_id] = np.asarray(emb, dtype=np.float32)
    for row, det_id in enumerate(ids):
        d = int(det_id)
        out[row] = cached.vectors[have[d]] if d in have else fetched[d]  # type: ignore[union-attr]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _build_pairs(ids: np.ndarray, vectors: np.ndarray, sites: np.ndarray | None) -> _Pairs:
    if sites is None:
        i, j, sim = comparable_pairs(vectors)
        return _Pairs(ids, vectors, i, j, sim.astype(np.float64), None)
    # Within each site on its own, as matching searches: a sighting's nearest neighbours are
    # found among its own site's, not crowded out by look-alikes of another property.
    parts_i, parts_j, parts_sim = [], [], []
    for site in np.unique(sites):
        rows = np.flatnonzero(sites == site)
        i, j, sim = comparable_pairs(vectors[rows])
        parts_i.append(rows[i])
        parts_j.append(rows[j])
        parts_sim.append(sim.astype(np.float64))
    i, j, sim = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_sim)
    order = np.argsort(-sim, kind="stable")  # most similar first, as comparable_pairs gives them
    return _Pairs(ids, vectors, i[order], j[order], sim[order], sites)


@dataclass
class Gallery:
    """One snapshot: the domain graph plus what maps it back to the database."""

    graph: ReviewGraph
    detection_ids: np.ndarray  # row -> detection id
    deer_keys: list[str]  # profile -> deer id as text (UUIDs are made only for what is shown)
    index: dict[str, int]  # deer id as text -> profile
    rows_of_track: dict[int, list[int]]

    def deer(self, profile: int) -> uuid.UUID:
        return uuid.UUID(self.deer_keys[profile])

    def profile(self, deer_id: uuid.UUID) -> int | None:
        return self.index.get(str(deer_id))

    def detection(self, row: int | np.integer) -> int:
        return int(self.detection_ids[row])


_SNAPSHOT = sa.text(
    """
    SELECT array_agg(d.id ORDER BY d.id),
           array_agg(d.deer_id::text ORDER BY d.id),
           array_agg(d.image_id ORDER BY d.id),
           array_agg(coalesce(d.track_id, -d.id) ORDER BY d.id),
           array_agg(coalesce(i.event_id, 0) ORDER BY d.id),
           array_agg(de.sex::text ORDER BY d.id),
           array_agg(d.site ORDER BY d.id)
    FROM detections d
    JOIN images i ON i.id = d.image_id
    JOIN deer de ON de.id = d.deer_id
    WHERE d.model_id = :model AND d.embedding IS NOT NULL
    """
)


def load_gallery(
    session: Session, model_id: str, cache: ReviewCache | None = None, *, across_sites: bool = False
) -> Gallery:
    """The review graph of `model_id`'s sightings. Candidates come from the query's own site, as
    matching's do (docs/deploy.md, sites), unless `across_sites` (DEERID_MATCH_ACROSS_SITES)."""
    # One row of arrays: 10,000 sightings arrive in a few ms instead of 10,000 row objects.
    det, deer, image, track, event, sexes, sites = session.execute(_SNAPSHOT, {"model": model_id}).one()
    ids = np.asarray(det or [], dtype=np.int64)
    cache = cache or ReviewCache()
    pairs = cache.pairs(session, model_id, ids, None if across_sites else np.asarray(sites or [], dtype=str))
    deer_keys, owner = np.unique(np.asarray(deer or [], dtype=str), return_inverse=True)
    owner = owner.astype(np.int64).ravel()
    image = np.asarray(image or [], dtype=np.int64)
    track = np.asarray(track or [], dtype=np.int64)  # a box with no track stands alone (-its id)
    event = np.asarray(event or [], dtype=np.int64)
    sex_text = np.asarray(sexes or [], dtype=str)
    sex = np.zeros(len(sex_text), dtype=np.int8)
    for value, code in _SEX_CODE.items():
        sex[sex_text == value.value] = code

    # A doe beside a buck is never a question worth a person's time.
    si, sj = sex[pairs.i], sex[pairs.j]
    fits = (si == 0) | (sj == 0) | (si == sj)
    graph = ReviewGraph(
        owner,
        pairs.i[fits],
        pairs.j[fits],
        pairs.sim[fits],
        len(deer_keys),
        vectors=pairs.vectors,
        memo=cache.memo(model_id, across_sites),
    )
    # Boxes of one photo are different animals.
    for profiles in _groups_with_several(image, owner):
        _block_all(graph, {int(p) for p in profiles})
    # Different tracks of one event are different animals.
    timed = event > 0
    for rows in _groups_with_several(event[timed], owner[timed], rows_too=True):
        members = np.flatnonzero(timed)[rows]
        tracks_of: dict[int, set[int]] = defaultdict(set)
        for r in members:
            tracks_of[int(owner[r])].add(int(track[r]))
        ps = sorted(tracks_of)
        for x in range(len(ps)):
            for y in range(x + 1, len(ps)):
                if tracks_of[ps[x]] != tracks_of[ps[y]]:
                    graph.block(ps[x], ps[y])

    row_of = {int(d): r for r, d in enumerate(ids)}
    for choice, query_det, shown in session.execute(
        sa.select(ReviewScreen.choice, ReviewScreen.query_detection_id, ReviewScreen.shown).where(
            ReviewScreen.undone_at.is_(None)
        )
    ):
        q = row_of.get(query_det)
        if q is None:
            continue
        if choice is ReviewChoice.SKIP:
            graph.retire(int(owner[q]))
        elif choice is ReviewChoice.NONE:
            for item in shown:
                c = row_of.get(int(item["detection_id"]))
                if c is not None and owner[c] != owner[q]:
                    graph.block(int(owner[q]), int(owner[c]))
    rows_of_track: dict[int, list[int]] = defaultdict(list)
    for r in np.flatnonzero(track > 0):
        rows_of_track[int(track[r])].append(int(r))
    keys = [str(k) for k in deer_keys]
    return Gallery(graph, ids, keys, {k: p for p, k in enumerate(keys)}, dict(rows_of_track))


def _groups_with_several(group: np.ndarray, owner: np.ndarray, *, rows_too: bool = False) -> list[np.ndarray]:
    """For each group value held by two or more profiles: those profiles (or, with `rows_too`,
    the positions of its rows)."""
    if len(group) == 0:
        return []
    width = int(owner.max()) + 1
    keys = np.unique(group * width + owner)  # one per (group, profile)
    values, counts = np.unique(keys // width, return_counts=True)
    shared = values[counts > 1]
    if rows_too:
        return [np.flatnonzero(group == g) for g in shared]
    return [keys[keys // width == g] % width for g in shared]


def _block_all(graph: ReviewGraph, profiles: Iterable[int]) -> None:
    ps = sorted(profiles)
    for x in range(len(ps)):
        for y in range(x + 1, len(ps)):
            graph.block(ps[x], ps[y])


# -- what the API asks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownCandidate:
    deer_id: uuid.UUID
    probability: float
    score: float
    via_detection_id: int  # the candidate's sighting most like the query
    anchor_detection_id: int  # how the pair is remembered (see module doc)


@dataclass(frozen=True)
class ScreenView:
    query_deer_id: uuid.UUID
    candidates: tuple[ShownCandidate, ...]
    remaining: int
    priority: float


def _anchor(session: Session, deer_id: uuid.UUID) -> int:
    anchor = session.execute(
        sa.select(sa.func.min(Detection.id)).where(Detection.deer_id == deer_id)
    ).scalar_one_or_none()
    if anchor is None:
        raise NotFound(f"deer {deer_id} has no sightings")
    return int(anchor)


def _shown(gallery: Gallery, screen_candidates: Sequence[Any]) -> tuple[ShownCandidate, ...]:
    out = []
    for c in screen_candidates:
        rows = np.flatnonzero(gallery.graph.owner == c.profile)
        out.append(
            ShownCandidate(
                deer_id=gallery.deer(c.profile),
                probability=c.probability,
                score=c.score,
                via_detection_id=gallery.detection(c.via_candidate),
                anchor_detection_id=int(gallery.detection_ids[rows].min()),
            )
        )
    return tuple(out)


def next_screen(
    session: Session,
    model_id: str,
    *,
    k: int = DEFAULT_K,
    probability: Probability = uncalibrated,
    exclude: Iterable[uuid.UUID] = (),
    cache: ReviewCache | None = None,
    across_sites: bool = False,
) -> ScreenView | None:
    gallery = load_gallery(session, model_id, cache, across_sites=across_sites)
    skip = {p for d in exclude if (p := gallery.profile(d)) is not None}
    screen: Screen | None = gallery.graph.next_screen(k, probability, exclude=skip)
    if screen is None:
        return None
    remaining = screen.waiting
    return ScreenView(
        gallery.deer(screen.query), _shown(gallery, screen.candidates), remaining, screen.priority
    )


def deer_candidates(
    session: Session,
    model_id: str,
    deer_id: uuid.UUID,
    *,
    k: int = DEFAULT_K,
    probability: Probability = uncalibrated,
    cache: ReviewCache | None = None,
    across_sites: bool = False,
) -> tuple[ShownCandidate, ...]:
    gallery = load_gallery(session, model_id, cache, across_sites=across_sites)
    profile = gallery.profile(deer_id)
    if profile is None:
        return ()
    return _shown(gallery, gallery.graph.candidates(profile, k, probability))


def track_candidates(
    session: Session,
    model_id: str,
    track_id: int,
    *,
    k: int = DEFAULT_K,
    probability: Probability = uncalibrated,
    cache: ReviewCache | None = None,
    across_sites: bool = False,
) -> tuple[ShownCandidate, ...]:
    """Candidates for one track on its own: as if it were split off its deer (its own deer is one)."""
    gallery = load_gallery(session, model_id, cache, across_sites=across_sites)
    rows = gallery.rows_of_track.get(track_id)
    if not rows:
        return ()
    graph = gallery.graph
    own = int(graph.owner[rows[0]])
    track_profile = graph.n_profiles
    graph.owner[rows] = track_profile
    graph.n_profiles += 1
    gallery.deer_keys.append(gallery.deer_keys[own])  # the query's slot; never shown as a candidate
    graph.invalidate()
    # Its own deer (what is left of it) is a candidate like any other: a person may want it split.
    return _shown(gallery, graph.candidates(track_profile, k, probability))


# -- answers ---------------------------------------------------------------------------------------


def _current(session: Session, deer_ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    """Where each named deer stands now: gone, or its sighting count."""
    out: dict[str, Any] = {}
    for d in deer_ids:
        deer = session.get(Deer, d)
        if deer is not None:
            out[str(d)] = {"exists": True, "sighting_count": deer.sighting_count}
            continue
        merged_into = session.execute(
            sa.select(Merge.target_id)
            .where(Merge.undone_at.is_(None), Merge.merged.contains([{"id": str(d)}]))
            .order_by(Merge.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        out[str(d)] = {"exists": False, "merged_into": str(merged_into) if merged_into else None}
    return out


def decide(
    session: Session,
    model_id: str,
    *,
    query: uuid.UUID,
    shown: Sequence[uuid.UUID],
    choice: ReviewChoice,
    candidate: uuid.UUID | None = None,
    probability: Probability = uncalibrated,
    cache: ReviewCache | None = None,
    across_sites: bool = False,
) -> ReviewScreen:
    """Record one answered screen; a match merges the query into the candidate.

    Raises ReviewConflict when a deer on the screen is gone or the pair was decided
    meanwhile (e.g. in another tab), and CurationError for an answer that breaks a rule."""
    shown = list(dict.fromkeys(shown))
    if choice is ReviewChoice.MATCH and (candidate is None or candidate not in shown):
        raise curation.CurationError("a match names one of the candidates shown")
    if choice is not ReviewChoice.MATCH and candidate is not None:
        raise curation.CurationError("only a match names a candidate")
    if query in shown:
        raise curation.CurationError("the query cannot be its own candidate")
    everyone = [query, *shown]
    gone = [d for d in everyone if session.get(Deer, d) is None]
    if gone:
        raise ReviewConflict(
            f"deer {gone[0]} is no longer there (merged or deleted since the screen was shown)",
            _current(session, everyone),
        )
    # Serialise answers: two tabs answering the same screen must not both merge.
    session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('deerid:review', 0))"))
    gallery = load_gallery(session, model_id, cache, across_sites=across_sites)
    q = gallery.profile(query)
    if q is None:
        raise curation.CurationError(f"deer {query} has no sighting of the active model to review")
    entries = []
    for d in shown:
        c = gallery.profile(d)
        if c is None or gallery.graph.is_blocked(q, c):
            raise ReviewConflict(
                f"deer {d} cannot be compared with {query} any more (decided meanwhile)",
                _current(session, everyone),
            )
        rows = np.flatnonzero(gallery.graph.owner == c)
        score = _pair_score(gallery, q, c)
        entries.append(
            {
                "deer_id": str(d),
                "detection_id": int(gallery.detection_ids[rows].min()),
                "score": score,
                "probability": float(probability(np.array([score]))[0]),
                "model_id": model_id,  # a score only means something for its model's vectors
            }
        )
    record = ReviewScreen(
        query_deer_id=query,
        query_detection_id=_anchor(session, query),
        choice=choice,
        candidate_deer_id=candidate,
        shown=entries,
    )
    if choice is ReviewChoice.MATCH:
        assert candidate is not None
        merge = curation.merge(session, candidate, [query])
        record.merge_id = merge.id
        # A person said these are one animal: its sightings are labelled data now.
        session.execute(sa.update(Detection).where(Detection.deer_id == candidate).values(confirmed_at=now()))
    session.add(record)
    session.flush()
    return record


def _pair_score(gallery: Gallery, a: int, b: int) -> float:
    pa, pb, sim, _, _ = gallery.graph.profile_pairs()
    hit = np.flatnonzero((pa == min(a, b)) & (pb == max(a, b)))
    return float(sim[hit[0]]) if len(hit) else float("nan")


def undo(session: Session, screen_id: int) -> list[uuid.UUID]:
    """Take an answer back; a match is unmerged. Returns the deer the undo touched.

    Refused (UndoRefused, a CurationError) when a later change conflicts: the merged deer was merged on
    into another, or sightings moved since, so the old state cannot be restored."""
    record = session.get(ReviewScreen, screen_id)
    if record is None:
        raise NotFound(f"no review decision {screen_id}")
    if record.undone_at is not None:
        raise curation.UndoRefused(f"review decision {screen_id} was already undone")
    touched = [record.query_deer_id]
    if record.choice is ReviewChoice.MATCH and record.merge_id is not None:
        merge = session.get(Merge, record.merge_id)
        if merge is None or merge.undone_at is not None:
            raise curation.UndoRefused(f"the merge of review decision {screen_id} was already undone")
        if session.get(Deer, merge.target_id) is None:
            raise curation.UndoRefused(
                f"deer {merge.target_id} was merged into another deer since; undo that merge first"
            )
        later = session.execute(
            sa.select(Merge.id).where(
                Merge.id > merge.id, Merge.undone_at.is_(None), Merge.target_id == merge.target_id
            )
        ).first()
        if later is not None:
            raise curation.UndoRefused(
                f"deer {merge.target_id} took part in a later merge ({later[0]}); undo that first"
            )
        moved = [
            d
            for item in merge.merged
            for d in item["detection_ids"]
            if session.get(Detection, d) is None or session.get(Detection, d).deer_id != merge.target_id  # type: ignore[union-attr]
        ]
        if moved:
            raise curation.UndoRefused(
                f"sighting {moved[0]} was moved since the merge; the merge cannot be undone as it was"
            )
        touched = [merge.target_id, *curation.undo_merge(session, merge.id)]
    record.undone_at = now()
    session.flush()
    return touched


def last_decisions(session: Session, limit: int = 50) -> list[ReviewScreen]:
    return list(
        session.execute(
            sa.select(ReviewScreen)
            .where(ReviewScreen.undone_at.is_(None))
            .order_by(ReviewScreen.id.desc())
            .limit(limit)
        ).scalars()
    )


# -- QC: walk one deer's sightings, worst fitting first ----------------------------------------------


def sighting_fit(
    session: Session, model_id: str, deer_id: uuid.UUID, cache: ReviewCache | None = None
) -> list[tuple[int, float | None]]:
    """(detection id, fit) for the deer's sightings, worst fit first.

    Fit = the best similarity to one of the deer's sightings *outside its own track* (its
    track-mates say nothing: they are the same frames). None: nothing to compare with."""
    # One deer's own sightings, wherever they were: its sites do not split it.
    gallery = load_gallery(session, model_id, cache, across_sites=True)
    profile = gallery.profile(deer_id)
    if profile is None:
        return []
    rows = np.flatnonzero(gallery.graph.owner == profile)
    track_of = np.full(len(gallery.detection_ids), -1, dtype=np.int64)
    for t, rs in gallery.rows_of_track.items():
        track_of[rs] = t
    x = gallery.graph.vectors
    assert x is not None
    sims = x[rows] @ x[rows].T
    out: list[tuple[int, float | None]] = []
    for a, r in enumerate(rows):
        other = [
            b for b, s in enumerate(rows) if s != r and (track_of[s] == -1 or track_of[s] != track_of[r])
        ]
        out.append((gallery.detection(r), float(sims[a, other].max()) if other else None))
    out.sort(key=lambda item: (item[1] is not None, item[1] if item[1] is not None else 0.0, item[0]))
    return out


def track_exists(session: Session, track_id: int) -> bool:
    from deerid.db.tables import Track

    return session.get(Track, track_id) is not None


def decided_pairs(session: Session, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, same) of the pairs people answered on the review screen, for `model_id`.

    A match is one same-animal pair (the chosen candidate); "none of these" is a
    different-animal pair for every candidate shown. Scores are as shown at the time: the
    best sighting pair between the two deer, the very score the probability maps."""
    scores: list[float] = []
    same: list[bool] = []
    for choice, candidate, shown in session.execute(
        sa.select(ReviewScreen.choice, ReviewScreen.candidate_deer_id, ReviewScreen.shown).where(
            ReviewScreen.undone_at.is_(None), ReviewScreen.choice != ReviewChoice.SKIP
        )
    ):
        for item in shown:
            if item.get("model_id") != model_id or not np.isfinite(item.get("score", np.nan)):
                continue
            if choice is ReviewChoice.NONE:
                scores.append(float(item["score"]))
                same.append(False)
            elif item["deer_id"] == str(candidate):
                scores.append(float(item["score"]))
                same.append(True)
    return np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
