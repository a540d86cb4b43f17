"""Probe findings on the HTTP API (PROBE.md F18, F20, F28), against the real embedded PostgreSQL.

What is tried: ids, offsets, dates, NUL bytes and NaN the database cannot hold,
sent to every route that takes them, answer 422 (or 404), never 500; a reverse
proxy on this machine never makes a remote visitor local (proxy headers, or
`behind_proxy`), so reads need the token and the page carries none; the token
file is made 0600 and reported as new only once.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from deerid.api.deps import ensure_api_token
from deerid.api.main import create_app
from deerid.core.config import Settings
from support.builders import World, assign, random_unit_vector

TOKEN = "probe-token-456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BIG = str(2**63)  # one past BIGINT
HUGE = "99999999999999999999"


@pytest.fixture
def seeded(settings: Settings, world: World) -> dict[str, object]:
    """One deer (one sighting) on one camera, written through the store."""
    det_id = world.sighting(random_unit_vector(1))
    deer_id = assign(world, det_id).deer_id
    return {"deer": str(deer_id), "detection": det_id}


@pytest.fixture
def api(settings: Settings, seeded: dict[str, object]) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"api_token": TOKEN})
    with TestClient(create_app(configured), base_url="http://localhost", raise_server_exceptions=False) as c:
        yield c


# F18: ids >= 2^63 (and >= 2^31 for INTEGER ids), offsets, `to=9999-12-31`, `q=%00`, NUL in
# names, NaN coordinates and 100k ids in one move were all HTTP 500.
OUT_OF_RANGE_READS = [
    f"/api/images/{BIG}",
    f"/api/detections/{HUGE}/crop",
    f"/api/events/{BIG}",
    f"/api/tracks/{BIG}",
    f"/api/tracks/{BIG}/candidates",
    f"/api/deer?offset={BIG}",
    f"/api/deer?camera_id={HUGE}",
    f"/api/deer?camera_id={2**31}",
    "/api/deer?to=9999-12-31",
    "/api/deer?from=9999-12-31",
    "/api/deer?q=%00",
    f"/api/events?offset={BIG}",
    f"/api/events?camera_id={2**31}",
]


def test_out_of_range_reads_answer_4xx_not_500(api: TestClient) -> None:
    """Tried: every read above, each once; all answer 404 or 422."""
    for url in OUT_OF_RANGE_READS:
        got = api.get(url, headers=AUTH)
        assert got.status_code in (404, 422), (url, got.status_code, got.text)


def test_out_of_range_writes_answer_4xx_not_500(api: TestClient, seeded: dict[str, object]) -> None:
    """Tried: undo of merges and decisions past the id types, NUL bytes in names and notes, a move
    of an id past BIGINT and of 100k ids, a review answer for an id past BIGINT."""
    camera = api.get("/api/cameras").json()[0]["id"]
    deer = seeded["deer"]
    writes = [
        ("POST", f"/api/merges/{HUGE}/undo", {}),
        ("POST", f"/api/merges/{2**31}/undo", {}),
        ("POST", f"/api/review/decisions/{BIG}/undo", {}),
        ("PATCH", f"/api/cameras/{2**31}", {"name": "x"}),
        ("PATCH", f"/api/deer/{deer}", {"name": "a\u0000b"}),
        ("PATCH", f"/api/deer/{deer}", {"notes": "\u0000"}),
        ("PATCH", f"/api/cameras/{camera}", {"name": "cam\u0000"}),
        ("POST", "/api/detections/move", {"detection_ids": [int(BIG)]}),
        ("POST", "/api/detections/move", {"detection_ids": list(range(1, 100_001))}),
        ("POST", "/api/review", {"detection_id": int(BIG), "candidate_deer": deer, "decision": "confirm"}),
    ]
    for method, url, body in writes:
        got = api.request(method, url, json=body, headers=AUTH)
        assert got.status_code in (404, 405, 422), (method, url, got.status_code, got.text)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_coordinates_answer_422(api: TestClient, value: str) -> None:
    camera = api.get("/api/cameras").json()[0]["id"]
    got = api.patch(
        f"/api/cameras/{camera}",
        content=f'{{"latitude": {value}}}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert got.status_code == 422, (value, got.status_code, got.text)


def test_the_boundaries_themselves_still_work(api: TestClient) -> None:
    """The largest values the database holds are answered normally, not refused with the rest."""
    camera = api.get("/api/cameras").json()[0]["id"]
    assert api.get("/api/deer?to=9999-12-30").status_code == 200
    assert api.get(f"/api/deer?offset={2**63 - 1}").json()["items"] == []
    assert api.get(f"/api/images/{2**63 - 1}").status_code == 404
    assert api.patch(f"/api/cameras/{camera}", json={"latitude": 45.5}, headers=AUTH).status_code == 200


PROXY_HEADERS = [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;host=deer.example.org"},
    {"X-Forwarded-Host": "deer.example.org"},
]


def test_proxy_headers_make_a_loopback_request_remote(api: TestClient) -> None:
    """F20: through a reverse proxy on this machine a remote visitor counted as local: open reads
    and the token in the dashboard page. Any proxy header now makes the request remote."""
    assert api.get("/api/deer?limit=1").status_code == 200  # truly local: open
    assert TOKEN in api.get("/").text
    for headers in PROXY_HEADERS:
        assert api.get("/api/deer?limit=1", headers=headers).status_code == 401, headers
        assert TOKEN not in api.get("/", headers=headers).text, headers
        assert api.get("/api/deer?limit=1", headers={**headers, **AUTH}).status_code == 200


def test_behind_proxy_nothing_is_local(settings: Settings, seeded: dict[str, object]) -> None:
    """F20: nginx's default `proxy_pass http://127.0.0.1:PORT;` rewrites Host to 127.0.0.1:PORT and adds
    no header, exactly what scripts/proxy.py sends: only `--behind-proxy` can tell, and with it no
    request is local."""
    configured = settings.model_copy(update={"api_token": TOKEN, "behind_proxy": True})
    with TestClient(create_app(configured), base_url="http://127.0.0.1:8731") as api:
        assert api.get("/api/deer?limit=1").status_code == 401
        page = api.get("/")
        assert (
            page.status_code == 200
            and TOKEN not in page.text
            and '<meta name="deerid-token"' not in page.text
        )
        assert api.get("/api/deer?limit=1", headers=AUTH).status_code == 200


def test_token_file_is_private_and_new_only_once(settings: Settings) -> None:
    """F28: the token is printed only when it was generated; it is created 0600 from the start."""
    token, generated = ensure_api_token(settings)
    assert generated and len(token) >= 24
    mode = stat.S_IMODE(settings.paths.api_token.stat().st_mode)
    assert mode == 0o600
    assert ensure_api_token(settings) == (token, False)
    from_env = settings.model_copy(update={"api_token": "from-env"})
    assert ensure_api_token(from_env) == ("from-env", False)
    assert json.dumps(token)  # plain text
