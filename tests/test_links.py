"""Stars (the hit list) and "same deer, another year" links, through the API and the CLI, in a
real PostgreSQL. The deer are one buck per season (2022, 2023, 2024), each founded by its own
sighting, as the matcher leaves a buck whose antlers changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from support.builders import World, assign, random_unit_vector
from support.cli import invoke

TOKEN = "links-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def bucks(world: World) -> list[str]:
    """Three bucks, first seen in the 2022, 2023 and 2024 seasons (seasons start 1 August)."""
    ids = []
    for n, year in enumerate((2022, 2023, 2024)):
        result = assign(
            world, world.sighting(random_unit_vector(100 + n), when=datetime(year, 10, 20, 7, 30))
        )
        ids.append(str(result.deer_id))
    return ids


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings.model_copy(update={"api_token": TOKEN})), base_url="http://localhost"
    ) as c:
        yield c


def test_star_and_filter(api: TestClient, bucks: list[str]) -> None:
    """Tried: starring one buck, the starred filter both ways, unstarring; a star needs the token."""
    assert api.patch(f"/api/deer/{bucks[1]}", json={"starred": True}).status_code == 401
    starred = api.patch(f"/api/deer/{bucks[1]}", json={"starred": True}, headers=AUTH)
    assert starred.status_code == 200 and starred.json()["starred"] is True
    only = api.get("/api/deer", params={"starred": "true"}).json()
    assert [d["id"] for d in only["items"]] == [bucks[1]]
    rest = api.get("/api/deer", params={"starred": "false"}).json()
    assert {d["id"] for d in rest["items"]} == {bucks[0], bucks[2]}
    assert (
        api.patch(f"/api/deer/{bucks[1]}", json={"starred": False}, headers=AUTH).json()["starred"] is False
    )
    assert api.get("/api/deer", params={"starred": "true"}).json()["items"] == []


def test_links_show_the_years_side_by_side(api: TestClient, bucks: list[str]) -> None:
    """Tried: linking 2022–2023 and 2023–2024 (a chain); every profile then shows all three
    seasons, oldest first, and which are linked to it directly. Linking again changes nothing
    but the note; a self-link is refused (422); unlinking the middle splits the chain; unlinking
    a pair that is not linked is 404; an unknown deer is 404."""
    first = api.post(
        f"/api/deer/{bucks[0]}/links", json={"deer_id": bucks[1], "note": "same drop tine"}, headers=AUTH
    )
    assert first.status_code == 200, first.text
    api.post(f"/api/deer/{bucks[2]}/links", json={"deer_id": bucks[1]}, headers=AUTH)
    again = api.post(f"/api/deer/{bucks[1]}/links", json={"deer_id": bucks[0]}, headers=AUTH)
    assert again.status_code == 200
    for deer in bucks:
        years = api.get(f"/api/deer/{deer}/years").json()
        assert [y["season"] for y in years] == ["2022–23", "2023–24", "2024–25"]
        assert [y["deer"]["id"] for y in years] == bucks
    from_2022 = api.get(f"/api/deer/{bucks[0]}/years").json()
    assert [y["linked_directly"] for y in from_2022] == [False, True, False]  # itself, 2023, via 2023

    refused = api.post(f"/api/deer/{bucks[0]}/links", json={"deer_id": bucks[0]}, headers=AUTH)
    assert refused.status_code == 422 and "itself" in refused.json()["detail"]
    missing = api.post(f"/api/deer/{bucks[0]}/links", json={"deer_id": str(uuid.uuid4())}, headers=AUTH)
    assert missing.status_code == 404

    split = api.delete(f"/api/deer/{bucks[1]}/links/{bucks[2]}", headers=AUTH)
    assert split.status_code == 200 and [y["deer"]["id"] for y in split.json()] == bucks[:2]
    assert [y["deer"]["id"] for y in api.get(f"/api/deer/{bucks[2]}/years").json()] == [bucks[2]]
    assert api.delete(f"/api/deer/{bucks[1]}/links/{bucks[2]}", headers=AUTH).status_code == 404


def test_a_merge_keeps_links_and_stars(api: TestClient, bucks: list[str], world: World) -> None:
    """Tried: a starred 2023 buck linked to 2022 is merged into a new 2023 profile (the matcher
    had split that season in two): the survivor is starred and linked to 2022; undoing the merge
    brings the folded profile back with its star."""
    extra = str(
        assign(world, world.sighting(random_unit_vector(200), when=datetime(2023, 11, 2, 6, 50))).deer_id
    )
    api.patch(f"/api/deer/{bucks[1]}", json={"starred": True}, headers=AUTH)
    api.post(f"/api/deer/{bucks[1]}/links", json={"deer_id": bucks[0]}, headers=AUTH)
    merged = api.post(f"/api/deer/{extra}/merge", json={"deer_ids": [bucks[1]]}, headers=AUTH)
    assert merged.status_code == 200, merged.text
    assert api.get(f"/api/deer/{extra}").json()["starred"] is True
    assert [y["deer"]["id"] for y in api.get(f"/api/deer/{bucks[0]}/years").json()] == [bucks[0], extra]
    undone = api.post(f"/api/merges/{merged.json()['merge_id']}/undo", headers=AUTH)
    assert undone.status_code == 200, undone.text
    assert api.get(f"/api/deer/{bucks[1]}").json()["starred"] is True


def test_cli_star_list_and_link_in_process(deerid: Deerid, bucks: list[str]) -> None:
    """Tried: `deer star`, `deer list --starred --json`, `deer link` printing the seasons side by
    side, a self-link refused in one line (exit 2), `deer link --remove` of an unlinked pair."""
    star = invoke(deerid, "deer", "star", bucks[2])
    listed = invoke(deerid, "deer", "list", "--starred", "--json")
    linked = invoke(deerid, "deer", "link", bucks[2], bucks[0], "--note", "same brow tines")
    itself = invoke(deerid, "deer", "link", bucks[0], bucks[0])
    absent = invoke(deerid, "deer", "link", bucks[1], bucks[0], "--remove")
    assert star.returncode == 0 and "starred" in star.output
    rows = json.loads(listed.output.strip().splitlines()[-1])
    assert [r["id"] for r in rows] == [bucks[2]] and rows[0]["starred"] is True
    assert linked.returncode == 0, linked.output
    assert "2022–23:" in linked.output and "2024–25:" in linked.output
    assert itself.returncode == 2 and "itself" in itself.output and "Traceback" not in itself.output
    assert absent.returncode == 2 and "not linked" in absent.output
