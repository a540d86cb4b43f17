"""Sites: matching searches and locks per site and sex (migration 0009, issue 8 section 2).

What is tried:
- a sighting is matched only against deer of its own site, and across sites only on opt-in;
- the detection's copy of its camera's site follows a camera moved to another site and a
  photo given another camera (the triggers), so the search never uses a stale site;
- a worker holding one site's lock does not hold up another site, does hold up the same
  site, and a cross-site worker waits for every site (and the other way round);
- `deerid ingest --site` puts the cameras in the site, refuses a camera of another named
  site with one clear line, and changes nothing then;
- the API shows and moves a camera's site and refuses an empty or control-character name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Camera, Detection, Image
from deerid.domain.classes import Sex
from deerid.domain.sites import DEFAULT_SITE, SiteError
from deerid.pipeline.ingest import ingest
from deerid.reid.service import Outcome, assign_detection
from deerid.store import deer as deer_store
from deerid.store import review as review_store
from deerid.store.review import ReviewCache
from support.builders import MODEL, World, assign, near, random_unit_vector
from support.cards import feeder_card


def _site_of(world: World, det_id: int) -> str:
    with world.factory() as s:
        return s.execute(sa.select(Detection.site).where(Detection.id == det_id)).scalar_one()


def test_a_sighting_is_matched_only_within_its_site(world: World) -> None:
    """The same animal's vector at a camera of another site founds a new deer; at its own site it joins."""
    a = random_unit_vector(1)
    first = world.box(world.photo(camera="north feeder", site="north"), a)
    assert _site_of(world, first) == "north"
    founded = assign(world, first)
    assert founded.outcome is Outcome.NEW_DEER

    elsewhere = world.box(world.photo(camera="south scrape", site="south"), near(a, 0.97, 2))
    other = assign(world, elsewhere)
    assert other.outcome is Outcome.NEW_DEER
    assert other.similarity is None  # nothing of site north was even a candidate

    again = world.box(world.photo(camera="north creek", site="north"), near(a, 0.97, 3))
    joined = assign(world, again)
    assert joined.outcome is Outcome.MATCHED
    assert joined.deer_id == founded.deer_id


def test_matching_across_sites_is_opt_in(world: World) -> None:
    """With across_sites the other site's deer is a candidate and the sighting joins it."""
    a = random_unit_vector(4)
    founded = assign(world, world.box(world.photo(camera="north feeder", site="north"), a))
    det = world.box(world.photo(camera="south scrape", site="south"), near(a, 0.97, 5))
    joined = assign_detection(world.factory, det, threshold=0.85, model_id=MODEL, across_sites=True)
    assert joined.outcome is Outcome.MATCHED
    assert joined.deer_id == founded.deer_id


def test_review_candidates_come_from_the_query_s_own_site(world: World) -> None:
    """Tried: a north deer and a near-identical south deer (each founded in its own site, as
    matching leaves them), and a second, unlike south deer. The south deer's review candidates
    hold only the other south deer; with across_sites the north look-alike comes first. Moving
    the north camera into the south site makes it a candidate at once (the cached pairs follow)."""
    a = random_unit_vector(7)
    north = assign(world, world.box(world.photo(camera="north feeder", site="north"), a)).deer_id
    south_box = world.box(world.photo(camera="south scrape", site="south"), near(a, 0.97, 8))
    south = assign(world, south_box).deer_id
    unlike = world.box(world.photo(camera="south creek", site="south"), random_unit_vector(9))
    other = assign(world, unlike).deer_id
    assert south is not None and len({north, south, other}) == 3
    cache = ReviewCache()

    def candidates(across_sites: bool) -> list[object]:
        with world.factory() as s:
            shown = review_store.deer_candidates(s, MODEL, south, cache=cache, across_sites=across_sites)
        return [c.deer_id for c in shown]

    assert candidates(False) == [other]
    assert candidates(True) == [north, other]
    with world.factory() as s:
        screen = review_store.next_screen(s, MODEL, cache=cache)
    assert screen is not None and north not in {screen.query_deer_id, *(c.deer_id for c in screen.candidates)}

    with world.factory() as s, s.begin():
        s.execute(sa.update(Camera).where(Camera.name == "north feeder").values(site="south"))
    assert candidates(False)[0] == north


def test_the_detections_site_follows_its_camera_and_photo(world: World) -> None:
    """Moving a camera, or giving a photo another camera, rewrites the copied site of its boxes."""
    image = world.photo(camera="ridge", site=None)
    det = world.box(image, random_unit_vector(6))
    assert _site_of(world, det) == DEFAULT_SITE
    with world.factory() as s, s.begin():
        s.execute(sa.update(Camera).where(Camera.name == "ridge").values(site="east"))
    assert _site_of(world, det) == "east"
    other = world.photo(camera="valley", site="west")
    with world.factory() as s, s.begin():
        valley = s.execute(sa.select(Image.camera_id).where(Image.id == other)).scalar_one()
        s.execute(sa.update(Image).where(Image.id == image).values(camera_id=valley))
    assert _site_of(world, det) == "west"
    with world.factory() as s, s.begin():
        s.execute(sa.update(Image).where(Image.id == image).values(camera_id=None))
    assert _site_of(world, det) == DEFAULT_SITE


def _runs_while_locked(world: World, held_site: str | None, work: Callable[[], object]) -> bool:
    """Does `work` finish while another transaction holds the buck lock of `held_site`?"""
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    with world.factory() as s, s.begin():
        deer_store.lock_partition(s, Sex.BUCK, held_site)
        thread = threading.Thread(target=run)
        thread.start()
        finished_while_held = done.wait(timeout=3)
    thread.join(timeout=30)
    assert done.is_set(), "the waiting worker never finished after the lock was released"
    return finished_while_held


def test_workers_of_different_sites_do_not_wait_on_each_other(world: World) -> None:
    """A held (north, buck) lock blocks north and cross-site work, not south; a cross-site lock blocks all."""
    north = world.box(world.photo(camera="north feeder", site="north"), random_unit_vector(7))
    south = world.box(world.photo(camera="south scrape", site="south"), random_unit_vector(8))
    north2 = world.box(world.photo(camera="north creek", site="north"), random_unit_vector(9))
    south2 = world.box(world.photo(camera="south field", site="south"), random_unit_vector(10))
    cross = world.box(world.photo(camera="east", site="east"), random_unit_vector(11))

    assert _runs_while_locked(world, "north", lambda: assign(world, south))
    assert not _runs_while_locked(world, "north", lambda: assign(world, north))
    assert not _runs_while_locked(
        world,
        "north",
        lambda: assign_detection(world.factory, cross, threshold=0.85, model_id=MODEL, across_sites=True),
    )
    assert not _runs_while_locked(world, None, lambda: assign(world, south2))
    assert not _runs_while_locked(world, None, lambda: assign(world, north2))


def test_ingest_site_option_sets_the_cameras_site_and_refuses_another_named_site(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """--site north puts the feeder cameras in north; the same photos with --site south are refused
    with one clear line naming the camera and its site, and nothing moves."""
    card, md = feeder_card(tmp_path, ["IMG_2257.JPG", "IMG_2260.JPG"])
    report = ingest(deerid, card, md, site="north", reidentify=False)
    assert report.photos == 2

    factory = deerid.sessions
    with factory() as s:
        assert set(s.execute(sa.select(Camera.site)).scalars()) == {"north"}
        assert set(s.execute(sa.select(Detection.site)).scalars()) == {"north"}
    with pytest.raises(SiteError, match=r"belongs to site 'north', not 'south'.*--site 'north'"):
        ingest(deerid, card, md, site="south", reidentify=False)
    with factory() as s:
        assert set(s.execute(sa.select(Detection.site)).scalars()) == {"north"}
    with pytest.raises(SiteError, match="printable"):
        ingest(deerid, card, md, site="  ", reidentify=False)


def test_api_shows_and_moves_a_cameras_site(settings: Settings, deerid: Deerid, tmp_path: Path) -> None:
    """GET lists the site; PATCH moves the camera and its boxes; a blank or control-character name is 422."""
    card, md = feeder_card(tmp_path, ["IMG_2257.JPG"])
    configured = settings.model_copy(update={"api_token": "t"})
    with Deerid(configured) as other:
        ingest(other, card, md, reidentify=False)
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(configured), base_url="http://localhost") as client:
        (camera,) = client.get("/api/cameras").json()
        assert camera["site"] == DEFAULT_SITE
        moved = client.patch(f"/api/cameras/{camera['id']}", json={"site": "home farm"}, headers=auth)
        assert moved.status_code == 200, moved.text
        assert moved.json()["site"] == "home farm"
        for bad in ("   ", "a\x01b"):
            answer = client.patch(f"/api/cameras/{camera['id']}", json={"site": bad}, headers=auth)
            assert answer.status_code == 422, (bad, answer.text)

    with deerid.sessions() as s:
        assert set(s.execute(sa.select(Detection.site)).scalars()) == {"home farm"}
