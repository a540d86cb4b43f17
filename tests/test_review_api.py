"""A review session driven through the API, on real feeder photos and the real database.

What is tried: the next screen (a query deer, its ranked candidates, nothing already
decided), a match that merges and its undo, "none of these" never showing the same pairs
again, skip, answers on a screen that changed meanwhile (409 with the current state, nothing
written), an undo refused after a later conflicting change, the candidates of a deer and of
a track, QC order, and bad bodies (422) and missing ids (404).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Detection
from deerid.pipeline.ingest import ingest
from support.builders import World
from support.cards import feeder_card

# buck-A (5 photos over 10 days, one camera), buck-B (2 photos), a doe + fawn photo, and a
# crowded feeder pair (IMG_7324/7325) whose boxes share an event.
PHOTOS = [
    "IMG_2257.JPG",
    "IMG_2263.JPG",
    "IMG_2333.JPG",
    "IMG_2336.JPG",
    "IMG_2354.JPG",
    "IMG_3899.JPG",
    "IMG_3901.JPG",
    "IMG_7335.JPG",
]
TOKEN = "review-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    card, md = feeder_card(tmp_path, PHOTOS)
    configured = settings.model_copy(update={"api_token": TOKEN})
    with Deerid(configured) as deerid:
        ingest(deerid, card, md)  # no calibration: no automatic merges
    with TestClient(create_app(configured), base_url="http://localhost") as client:
        yield client


def total(api: TestClient) -> int:
    return int(api.get("/api/deer", params={"limit": 1}).json()["total"])


def answer(api: TestClient, screen: dict, choice: str, pick: int | None = None) -> dict:  # type: ignore[type-arg]
    shown = [c["deer"]["id"] for c in screen["candidates"]]
    body = {"query": screen["query"]["deer"]["id"], "shown": shown, "choice": choice}
    if pick is not None:
        body["candidate"] = shown[pick]
    res = api.post("/api/review/decisions", json=body, headers=AUTH)
    assert res.status_code == 200, res.text
    return res.json()  # type: ignore[no-any-return]


def test_screen_shows_the_query_at_full_size_and_ranked_candidates(api: TestClient) -> None:
    assert total(api) == 8  # 7 buck boxes and a doe, each its own provisional deer
    screen = api.get("/api/review/next", params={"k": 3}).json()
    assert screen["calibrated"] is False and screen["remaining"] >= 1
    query = screen["query"]["deer"]
    assert screen["query"]["crops"] and screen["query"]["crops"][0]["crop_url"].startswith("/api/detections/")
    # The query is shown at the photo's own resolution, the candidates at card size.
    crop = screen["query"]["crops"][0]
    full = Image.open(io.BytesIO(api.get(crop["crop_url"]).content))
    card = Image.open(io.BytesIO(api.get(f"/api/detections/{crop['detection_id']}/crop").content))
    photo = Image.open(io.BytesIO(api.get(crop["image_url"]).content))
    _, _, w, h = crop["bbox"]
    assert crop["crop_url"].endswith("?size=full") and max(card.size) <= 320
    assert abs(full.size[0] - w * photo.size[0]) <= 2 and abs(full.size[1] - h * photo.size[1]) <= 2
    assert api.get(f"/api/detections/{crop['detection_id']}/crop", params={"size": "huge"}).status_code == 422
    cands = screen["candidates"]
    assert [c["rank"] for c in cands] == [1, 2, 3]
    assert [c["probability"] for c in cands] == sorted((c["probability"] for c in cands), reverse=True)
    # A doe and a buck are never a question.
    assert all(c["deer"]["sex"] in (query["sex"], "unknown", "fawn") for c in cands)
    assert all(c["crops"] and c["crops"][0]["detection_id"] == c["via_detection_id"] for c in cands)


def test_match_merges_and_its_undo_restores_both_once(api: TestClient) -> None:
    before = total(api)
    screen = api.get("/api/review/next", params={"k": 3}).json()
    query, cands = screen["query"]["deer"], screen["candidates"]
    merged = answer(api, screen, "match", pick=0)
    assert merged["merge_id"] is not None and merged["deer"]["id"] == cands[0]["deer"]["id"]
    assert merged["deer"]["sighting_count"] == cands[0]["deer"]["sighting_count"] + query["sighting_count"]
    assert total(api) == before - 1
    assert api.get(f"/api/deer/{query['id']}").status_code == 404

    undone = api.post(f"/api/review/decisions/{merged['decision_id']}/undo", headers=AUTH)
    assert undone.status_code == 200, undone.text
    assert {d["id"] for d in undone.json()["deer"]} == {query["id"], cands[0]["deer"]["id"]}
    assert total(api) == before
    again = api.post(f"/api/review/decisions/{merged['decision_id']}/undo", headers=AUTH)
    assert again.status_code == 409 and "already undone" in again.json()["detail"]


def test_none_of_these_pairs_are_never_shown_together_again(api: TestClient) -> None:
    """From either side: neither the query's candidates nor theirs hold the other."""
    before = total(api)
    screen = api.get("/api/review/next", params={"k": 3}).json()
    q = screen["query"]["deer"]["id"]
    rejected = {c["deer"]["id"] for c in screen["candidates"]}
    answer(api, screen, "none")
    assert total(api) == before
    for deer_id in rejected:
        seen = {c["deer"]["id"] for c in api.get(f"/api/deer/{deer_id}/candidates", params={"k": 9}).json()}
        assert q not in seen
    mine = {c["deer"]["id"] for c in api.get(f"/api/deer/{q}/candidates", params={"k": 9}).json()}
    assert not mine & rejected
    history = api.get("/api/review/decisions").json()
    assert history[0]["choice"] == "none" and set(map(str, history[0]["shown"])) == rejected


def test_a_skipped_query_is_not_offered_again(api: TestClient) -> None:
    screen = api.get("/api/review/next", params={"k": 3}).json()
    skipped = screen["query"]["deer"]["id"]
    answer(api, screen, "skip")
    while (res := api.get("/api/review/next", params={"k": 9})).status_code == 200:
        nxt = res.json()
        assert nxt["query"]["deer"]["id"] != skipped
        answer(api, nxt, "none")
    assert res.status_code == 204  # every pair decided: nothing left


def test_conflicts_are_409_and_lose_nothing(api: TestClient) -> None:
    screen = api.get("/api/review/next", params={"k": 2}).json()
    a = screen["query"]["deer"]["id"]
    b = screen["candidates"][0]["deer"]["id"]
    # Meanwhile someone merges the first candidate into the second by hand.
    c = screen["candidates"][1]["deer"]["id"]
    assert api.post(f"/api/deer/{c}/merge", json={"deer_ids": [b]}, headers=AUTH).status_code == 200
    before = total(api)
    stale = api.post(
        "/api/review/decisions",
        json={"query": a, "shown": [b, c], "choice": "match", "candidate": b},
        headers=AUTH,
    )
    assert stale.status_code == 409
    assert stale.json()["current"][b] == {"exists": False, "merged_into": c}
    assert total(api) == before and api.get(f"/api/deer/{a}").status_code == 200

    # An undo after a later conflicting change is refused with the reason.
    screen = api.get("/api/review/next", params={"k": 2}).json()
    merged = answer(api, screen, "match", pick=0)
    target = merged["deer"]["id"]
    other = next(
        d["id"] for d in api.get("/api/deer", params={"limit": 50}).json()["items"] if d["id"] != target
    )
    assert api.post(f"/api/deer/{other}/merge", json={"deer_ids": [target]}, headers=AUTH).status_code == 200
    refused = api.post(f"/api/review/decisions/{merged['decision_id']}/undo", headers=AUTH)
    assert refused.status_code == 409 and "merged into another deer" in refused.json()["detail"]


def test_bad_answers(api: TestClient) -> None:
    screen = api.get("/api/review/next", params={"k": 2}).json()
    q = screen["query"]["deer"]["id"]
    shown = [c["deer"]["id"] for c in screen["candidates"]]
    post = api.post
    # match without naming a candidate, a candidate not shown, the query as its own candidate
    assert (
        post(
            "/api/review/decisions", json={"query": q, "shown": shown, "choice": "match"}, headers=AUTH
        ).status_code
        == 422
    )
    assert (
        post(
            "/api/review/decisions",
            json={"query": q, "shown": shown[:1], "choice": "match", "candidate": shown[1]},
            headers=AUTH,
        ).status_code
        == 422
    )
    assert (
        post(
            "/api/review/decisions", json={"query": q, "shown": [q], "choice": "none"}, headers=AUTH
        ).status_code
        == 422
    )
    assert (
        post(
            "/api/review/decisions", json={"query": q, "shown": shown, "choice": "maybe"}, headers=AUTH
        ).status_code
        == 422
    )
    assert (
        post("/api/review/decisions", json={"query": q, "shown": shown, "choice": "none"}).status_code == 401
    )
    assert api.post("/api/review/decisions/999999/undo", headers=AUTH).status_code == 404
    assert api.get("/api/deer/00000000-0000-0000-0000-000000000000/candidates").status_code == 404
    assert api.get("/api/tracks/999999/candidates").status_code == 404
    assert api.get("/api/review/next", params={"exclude": "not-a-uuid"}).status_code == 422
    assert api.get("/api/review/next", params={"k": 10}).status_code == 422


def test_track_candidates_and_qc(api: TestClient) -> None:
    deer = api.get("/api/deer", params={"sex": "buck", "limit": 50}).json()["items"]
    one = deer[0]
    sightings = api.get(f"/api/deer/{one['id']}/detections").json()
    track = sightings[0]["track_id"]
    assert track is not None  # every re-identified box belongs to a track
    cands = api.get(f"/api/tracks/{track}/candidates", params={"k": 4}).json()
    # Its deer holds nothing else, so as the track stands alone its own deer is no candidate.
    assert 1 <= len(cands) <= 4 and one["id"] not in {c["deer"]["id"] for c in cands}
    # Merge two bucks by hand, then QC lists both sightings with how well each fits the other.
    two = deer[1]
    api.post(f"/api/deer/{one['id']}/merge", json={"deer_ids": [two["id"]]}, headers=AUTH)
    qc = api.get(f"/api/deer/{one['id']}/qc").json()
    fits = [s["fit"] for s in qc["sightings"]]
    assert len(fits) == one["sighting_count"] + two["sighting_count"]
    assert all(f is not None for f in fits) and fits == sorted(fits)


def test_answers_are_labelled_pairs(api: TestClient, settings: Settings, deerid: Deerid) -> None:
    """A match gives one same-animal pair and "none" a different-animal pair per candidate shown,
    with the score shown, for the model that made it; an undone answer no longer counts, and
    another model id sees none of them."""
    from deerid.store.review import decided_pairs

    model_id = deerid.embedder().model_id
    first = api.get("/api/review/next", params={"k": 3}).json()
    merged = answer(api, first, "match", pick=0)
    second = api.get("/api/review/next", params={"k": 3}).json()
    answer(api, second, "none")
    with deerid.sessions() as session:
        scores, same = decided_pairs(session, model_id)
        assert same.tolist() == [True] + [False] * len(second["candidates"])
        assert scores[0] == pytest.approx(first["candidates"][0]["similarity"], abs=1e-3)
        assert len(decided_pairs(session, "another-model")[0]) == 0
    assert api.post(f"/api/review/decisions/{merged['decision_id']}/undo", headers=AUTH).status_code == 200
    with deerid.sessions() as session:
        assert decided_pairs(session, model_id)[1].tolist() == [False] * len(second["candidates"])


def test_animals_seen_together_are_never_a_question(settings: Settings, tmp_path: Path) -> None:
    """IMG_7325 then IMG_7324: one event (gap set to cover their 278 s) with several deer at a
    feeder. Tried: every deer's candidates; no deer is ever offered a deer holding another track
    of its event (here each such pair also shares a photo; the event rule alone is tried below),
    nor a deer of the other sex (doe vs buck), while deer of other events are offered."""
    import sqlalchemy as sa

    from deerid.db.tables import Image

    names = ["IMG_7324.JPG", "IMG_7325.JPG", "IMG_7335.JPG", "IMG_3899.JPG", "IMG_2257.JPG"]
    card, md = feeder_card(tmp_path, names)
    configured = settings.model_copy(update={"api_token": TOKEN, "encounter_gap": 400})
    with Deerid(configured) as other:
        ingest(other, card, md)
        with other.sessions() as s:
            rows = s.execute(
                sa.select(Detection.deer_id, Detection.track_id, Image.event_id, Detection.sex)
                .join(Image, Image.id == Detection.image_id)
                .where(Detection.deer_id.is_not(None))
            ).all()
    event_of = {str(d): e for d, _, e, _ in rows}
    sex_of = {str(d): x.value for d, _, _, x in rows}
    feeder_event = {e for d, t, e, _ in rows if t is not None and sum(1 for r in rows if r[2] == e) > 2}
    assert len(feeder_event) == 1  # the crowded pair is one event
    with TestClient(create_app(configured), base_url="http://localhost") as api:
        offered_across_events = False
        for deer_id in event_of:
            for c in api.get(f"/api/deer/{deer_id}/candidates", params={"k": 9}).json():
                other = c["deer"]["id"]
                assert event_of[other] != event_of[deer_id], "two animals of one event offered as one"
                assert {sex_of[deer_id], sex_of[other]} != {"doe", "buck"}
                offered_across_events = True
        assert offered_across_events


def test_two_tracks_of_one_event_are_never_a_pair(world: World) -> None:
    """Built by hand so only the event rule can keep them apart: two photos of one event, one
    deer box each, in two different tracks and looking alike (0.95), plus a third alike box in
    another event. Tried: the event's two deer never appear as each other's candidates or as one
    screen; the other event's deer is offered to both."""
    import sqlalchemy as sa

    from deerid.db.tables import Event, Image, Track
    from deerid.store import review as review_store
    from support.builders import MODEL, assign, near, random_unit_vector

    base = random_unit_vector(7)
    dets = [world.sighting(near(base, 0.95, seed)) for seed in (1, 2, 3)]
    deer = [assign(world, d, threshold=None).deer_id for d in dets]
    with world.factory() as s, s.begin():
        together, apart = Event(), Event()
        s.add_all([together, apart])
        s.flush()
        tracks = [Track(event_id=together.id), Track(event_id=together.id), Track(event_id=apart.id)]
        s.add_all(tracks)
        s.flush()
        for det_id, track in zip(dets, tracks, strict=True):
            s.execute(sa.update(Detection).where(Detection.id == det_id).values(track_id=track.id))
            image_id = s.get(Detection, det_id).image_id  # type: ignore[union-attr]
            s.execute(sa.update(Image).where(Image.id == image_id).values(event_id=track.event_id))
    with world.factory() as s:
        for me, sibling in ((deer[0], deer[1]), (deer[1], deer[0])):
            offered = [c.deer_id for c in review_store.deer_candidates(s, MODEL, me, k=9)]
            assert sibling not in offered and deer[2] in offered
        screen = review_store.next_screen(s, MODEL, k=9)
        assert screen is not None
        shown = [c.deer_id for c in screen.candidates]
        if screen.query_deer_id in deer[:2]:
            sibling = deer[1] if screen.query_deer_id == deer[0] else deer[0]
            assert sibling not in shown
        else:  # the other event's deer asks first, and both of the event's deer are its candidates
            assert set(deer[:2]) <= set(shown)
