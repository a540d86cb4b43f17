"""The JSON API against the real embedded PostgreSQL, on real feeder photos.

What is tried: every endpoint; merge and split keeping counts and first/last
seen right; 401 without or with a wrong token, 404 for unknown ids, 422 for bad
bodies and parameters; reads from another machine needing the token; crops and
photos served by id; a camera clock offset moving the activity-by-hour plot.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.pipeline.ingest import ingest
from support.cards import feeder_card
from support.paths import FEEDER, FEEDER_JSON

# buck-A (5 photos over 10 days, one camera), buck-B (2 photos), and a doe + fawn photo.
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
TOKEN = "test-token-123"


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    card, md = feeder_card(tmp_path, PHOTOS)
    configured = settings.model_copy(update={"api_token": TOKEN})
    with Deerid(configured) as deerid:
        ingest(deerid, card, md)
    with TestClient(create_app(configured), base_url="http://localhost") as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def bucks(api: TestClient) -> list[dict]:  # type: ignore[type-arg]
    page = api.get("/api/deer", params={"sex": "buck", "limit": 100}).json()
    return sorted(page["items"], key=lambda d: d["first_seen"])


def test_list_filter_sort_paginate(api: TestClient) -> None:
    page = api.get("/api/deer").json()
    assert page["total"] == len(page["items"]) == 8  # 7 buck boxes, 1 doe; the fawn box is too small
    assert all(d["crop_url"].startswith("/api/detections/") for d in page["items"])
    times = [d["last_seen"] for d in page["items"]]
    assert times == sorted(times, reverse=True)
    assert {d["sex"] for d in bucks(api)} == {"buck"} and len(bucks(api)) == 7
    two = api.get("/api/deer", params={"limit": 2, "offset": 1, "sort": "name", "order": "asc"}).json()
    names = sorted(d["name"] for d in page["items"])
    assert [d["name"] for d in two["items"]] == names[1:3] and two["total"] == page["total"]
    victure = api.get("/api/cameras").json()[-1]
    assert victure["name"] == "VICTURE HC300"
    by_camera = api.get("/api/deer", params={"camera_id": victure["id"]}).json()
    assert by_camera["total"] == 5 and all(d["cameras"] == ["VICTURE HC300"] for d in by_camera["items"])
    dated = api.get("/api/deer", params={"from": "2021-10-25", "to": "2021-10-31"}).json()
    assert 0 < dated["total"] < 5
    assert api.get("/api/deer", params={"sort": "weight"}).status_code == 422
    assert api.get("/api/deer", params={"limit": 0}).status_code == 422


def test_detail_patch_and_errors(api: TestClient) -> None:
    deer = bucks(api)[0]
    assert api.get(f"/api/deer/{deer['id']}").json()["name"] == deer["name"]
    assert api.get(f"/api/deer/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/deer/not-a-uuid").status_code == 422
    url = f"/api/deer/{deer['id']}"
    assert api.patch(url, json={"name": "Big Eight"}).status_code == 401
    assert (
        api.patch(url, json={"name": "Big Eight"}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    changed = api.patch(url, json={"name": "Big Eight", "notes": "inward tine, left beam"}, headers=AUTH)
    assert changed.status_code == 200 and changed.json()["name"] == "Big Eight"
    assert api.patch(url, json={"name": ""}, headers=AUTH).status_code == 422
    assert api.patch(url, json={"sex": "stag"}, headers=AUTH).status_code == 422
    assert api.patch(f"/api/deer/{uuid.uuid4()}", json={"name": "x"}, headers=AUTH).status_code == 404


def test_reads_from_another_machine_need_the_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_token": TOKEN}))
    with TestClient(app, client=("192.0.2.7", 5000), base_url="http://localhost") as remote:
        assert remote.get("/api/deer").status_code == 401
        assert remote.get("/api/deer", headers=AUTH).status_code == 200
    # a local client, but a page on another host name (DNS rebinding): no free reads
    with TestClient(app, base_url="http://deer.example") as rebound:
        assert rebound.get("/api/deer").status_code == 401


def test_detections_timeline_locations_and_clock_offset(api: TestClient) -> None:
    deer = bucks(api)[0]
    dets = api.get(f"/api/deer/{deer['id']}/detections").json()
    assert len(dets) == deer["sighting_count"] and dets[0]["crop_url"].endswith("/crop")
    line = api.get(f"/api/deer/{deer['id']}/timeline").json()
    assert sum(line["by_hour"]) == deer["sighting_count"] == sum(d["sightings"] for d in line["by_day"])
    places = api.get(f"/api/deer/{deer['id']}/locations").json()
    assert places[0]["camera"] == "VICTURE HC300" and places[0]["sightings"] == deer["sighting_count"]

    camera = places[0]["camera_id"]
    hour = line["by_hour"].index(max(line["by_hour"]))
    assert api.patch(f"/api/cameras/{camera}", json={"clock_offset_s": 3600}, headers=AUTH).status_code == 200
    shifted = api.get(f"/api/deer/{deer['id']}/timeline").json()["by_hour"]
    assert shifted[(hour + 1) % 24] == line["by_hour"][hour]
    for path in ("detections", "timeline", "locations"):
        assert api.get(f"/api/deer/{uuid.uuid4()}/{path}").status_code == 404


def test_merge_then_undo(api: TestClient) -> None:
    first, second, third = bucks(api)[:3]
    body = {"deer_ids": [second["id"], third["id"]]}
    assert api.post(f"/api/deer/{first['id']}/merge", json=body).status_code == 401
    assert api.post(f"/api/deer/{first['id']}/merge", json={"deer_ids": []}, headers=AUTH).status_code == 422
    assert (
        api.post(
            f"/api/deer/{first['id']}/merge", json={"deer_ids": [str(uuid.uuid4())]}, headers=AUTH
        ).status_code
        == 404
    )
    merged = api.post(f"/api/deer/{first['id']}/merge", json=body, headers=AUTH)
    assert merged.status_code == 200
    out = merged.json()
    total = first["sighting_count"] + second["sighting_count"] + third["sighting_count"]
    assert out["deer"]["sighting_count"] == total
    assert out["deer"]["first_seen"] == min(d["first_seen"] for d in (first, second, third))
    assert out["deer"]["last_seen"] == max(d["last_seen"] for d in (first, second, third))
    assert api.get(f"/api/deer/{second['id']}").status_code == 404
    assert api.get(f"/api/deer/{third['id']}").status_code == 404

    undone = api.post(f"/api/merges/{out['merge_id']}/undo", headers=AUTH)
    assert undone.status_code == 200 and {d["id"] for d in undone.json()} == {second["id"], third["id"]}
    assert api.get(f"/api/deer/{first['id']}").json()["sighting_count"] == first["sighting_count"]
    assert api.post(f"/api/merges/{out['merge_id']}/undo", headers=AUTH).status_code == 409
    assert api.post("/api/merges/9999/undo", headers=AUTH).status_code == 404


def test_split_and_move(api: TestClient) -> None:
    first, second = bucks(api)[:2]
    api.post(f"/api/deer/{first['id']}/merge", json={"deer_ids": [second["id"]]}, headers=AUTH)
    dets = api.get(f"/api/deer/{first['id']}/detections").json()
    moved = dets[-1]["detection_id"]
    split = api.post(f"/api/deer/{first['id']}/split", json={"detection_ids": [moved]}, headers=AUTH)
    assert split.status_code == 200
    new = split.json()["deer"]
    assert new["id"] not in (first["id"], second["id"]) and new["sighting_count"] == 1
    left = api.get(f"/api/deer/{first['id']}").json()
    assert left["sighting_count"] == len(dets) - 1 and left["last_seen"] == dets[-2]["captured_at"]
    assert (
        api.post(f"/api/deer/{first['id']}/split", json={"detection_ids": [moved]}, headers=AUTH).status_code
        == 422
    )
    back = api.post(
        "/api/detections/move", json={"detection_ids": [moved], "to_deer": first["id"]}, headers=AUTH
    )
    assert back.status_code == 200 and back.json()["deer"]["sighting_count"] == len(dets)
    assert api.get(f"/api/deer/{new['id']}").status_code == 404  # emptied
    assert api.post("/api/detections/move", json={"detection_ids": [10**9]}, headers=AUTH).status_code == 404
    assert api.post("/api/detections/move", json={"detection_ids": []}, headers=AUTH).status_code == 422


def test_review_queue_confirm_and_reject(settings: Settings, api: TestClient) -> None:
    # Every feeder deer founded its own profile at 0.85; a threshold just above the closest
    # call turns the founders that nearly matched into review items.
    founders = [
        (d["similarity"], d["detection_id"])
        for deer in api.get("/api/deer", params={"limit": 100}).json()["items"]
        for d in api.get(f"/api/deer/{deer['id']}/detections").json()
        if d["similarity"] is not None
    ]
    best = max(founders)[0]
    app = create_app(settings.model_copy(update={"api_token": TOKEN, "reid_threshold": best + 0.01}))
    with TestClient(app, base_url="http://localhost") as client:
        queue = client.get("/api/review", params={"band": 0.05}).json()
        assert queue and queue[0]["kind"] == "near_miss"
        assert queue[0]["similarity"] == pytest.approx(best)
        item = queue[0]
        assert item["candidate_crops"] and item["crop_url"]
        body = {
            "detection_id": item["detection_id"],
            "candidate_deer": item["candidate_deer"]["id"],
            "decision": "confirm",
        }
        assert client.post("/api/review", json=body).status_code == 401
        assert client.post("/api/review", json={**body, "decision": "maybe"}, headers=AUTH).status_code == 422
        done = client.post("/api/review", json=body, headers=AUTH)
        assert done.status_code == 200 and done.json()["deer"]["id"] == item["candidate_deer"]["id"]
        after = client.get("/api/review", params={"band": 0.05}).json()
        assert item["detection_id"] not in [i["detection_id"] for i in after]
        if after:
            other = after[0]
            rejected = client.post(
                "/api/review",
                json={
                    "detection_id": other["detection_id"],
                    "candidate_deer": other["candidate_deer"]["id"],
                    "decision": "reject",
                },
                headers=AUTH,
            )
            assert rejected.status_code == 200
            assert other["detection_id"] not in [i["detection_id"] for i in client.get("/api/review").json()]


def test_cameras(api: TestClient) -> None:
    cams = api.get("/api/cameras").json()
    assert [c["name"] for c in cams] == ["MOULTRIE EDGE", "VICTURE HC300"]
    assert sum(c["photos"] for c in cams) == len(PHOTOS)
    cam = cams[0]["id"]
    patch = {"name": "Woods feeder", "latitude": 38.2, "longitude": -92.1}
    assert api.patch(f"/api/cameras/{cam}", json=patch).status_code == 401
    changed = api.patch(f"/api/cameras/{cam}", json=patch, headers=AUTH).json()
    assert changed["name"] == "Woods feeder" and changed["latitude"] == 38.2
    assert api.patch(f"/api/cameras/{cam}", json={"latitude": 123}, headers=AUTH).status_code == 422
    assert api.patch(f"/api/cameras/{cam}", json={"name": "VICTURE HC300"}, headers=AUTH).status_code == 409
    assert api.patch("/api/cameras/999", json={"name": "x"}, headers=AUTH).status_code == 404


def test_media_by_id(api: TestClient) -> None:
    deer = bucks(api)[0]
    crop = api.get(deer["crop_url"])
    assert (
        crop.status_code == 200
        and crop.headers["content-type"] == "image/jpeg"
        and crop.content[:2] == b"\xff\xd8"
    )
    again = api.get(deer["crop_url"])  # served from the crop cache the second time
    assert again.content == crop.content
    det = api.get(f"/api/deer/{deer['id']}/detections").json()[0]
    photo = api.get(det["image_url"])
    assert photo.status_code == 200 and len(photo.content) > 10_000
    assert api.get("/api/images/999999").status_code == 404
    assert api.get("/api/detections/999999/crop").status_code == 404
    assert api.get("/api/images/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert api.get("/api/health").json()["status"] == "ok"
    assert "/api/deer/{deer_id}/merge" in api.get("/openapi.json").json()["paths"]


def _wait_upload(client: TestClient, upload_id: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 180
    while True:
        state = client.get(f"/api/uploads/{upload_id}").json()
        if state["status"] in ("done", "failed", "interrupted") or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def test_upload_photos_and_detections(api: TestClient) -> None:
    """Tried: no token, a file that is not a photo, a malformed detections file, unknown ids."""
    names = ["IMG_4192.JPG", "IMG_5726.JPG"]
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    files = [("files", (n, (FEEDER / n).read_bytes(), "image/jpeg")) for n in names]
    md = ("detections", ("md.json", json.dumps(data).encode(), "application/json"))
    assert api.post("/api/uploads", files=[*files, md]).status_code == 401
    assert (
        api.post(
            "/api/uploads", files=[("files", ("notes.txt", b"hi", "text/plain"))], headers=AUTH
        ).status_code
        == 422
    )

    before = api.get("/api/deer").json()["total"]
    started = api.post("/api/uploads", files=[*files, md], headers=AUTH)
    assert started.status_code == 202 and started.json()["photos_total"] == 2
    state = _wait_upload(api, started.json()["id"])
    assert state["status"] == "done", state
    assert state["photos_done"] == 2 and state["reidentified"] == state["report"]["reidentified"] >= 2
    assert api.get("/api/deer").json()["total"] == before + state["new_deer"]

    broken = api.post(
        "/api/uploads",
        files=[*files, ("detections", ("md.json", b"{not json", "application/json"))],
        headers=AUTH,
    )
    failed = _wait_upload(api, broken.json()["id"])
    assert failed["status"] == "failed" and "not valid JSON" in failed["error"]
    assert api.get(f"/api/uploads/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/uploads/..%2F..%2Fetc").status_code == 404
