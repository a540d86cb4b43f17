"""The review screen and QC mode in a real browser (Debian's Chromium, driven by Playwright) against
a real uvicorn server on the feeder photos, ingested as a new user would (no calibration: no
automatic merges, so the founders wait for review).

What is tried: one query beside its numbered candidates; `1` merges into candidate 1 (one deer
fewer through the API), `n` none of these, `s` skip, `←`/`→` through the screens of the session
(read-only, with what was decided), `u` undo on an earlier screen (the deer count comes back) and on
the live one, `f` the whole photo; a 409 when the query was merged through the API after the screen
loaded (the reason is shown, the screen reloads, nothing is recorded); QC mode from a deer's page,
walking its sightings worst-fitting first, splitting one off with `x` and putting it back with `u`.
Screenshots land in artifacts/<test name>/.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

import test_dashboard as dash
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.pipeline.ingest import ingest
from support.db import create_database
from support.paths import FEEDER, FEEDER_JSON

# The server, browser and page fixtures of the dashboard tests, serving this module's `feeder`.
server, api, browser, page = dash.server, dash.api, dash.browser, dash.page
ALL_LOADED, CHROMIUM, TOKEN, shot = dash.ALL_LOADED, dash.CHROMIUM, dash.TOKEN, dash.shot

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
expect.set_options(timeout=15_000)

SCREEN = "#review-screen"


@pytest.fixture(scope="module")
def feeder(pg_root: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Every feeder photo ingested with the defaults; the server fixtures of test_dashboard serve it."""
    data_dir = tmp_path_factory.mktemp("review-screen") / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(
        database_url=create_database(pg_root),
        data_dir=data_dir,
        device="cpu",
        broker_url=None,
        api_token=TOKEN,
    )
    with Deerid(settings) as deerid:
        ingest(deerid, FEEDER, FEEDER_JSON)
    return settings


def deer_total(api: httpx.Client) -> int:
    return int(api.get("/api/deer", params={"limit": 1}).json()["total"])


def shown_query(page: Page) -> str:
    """The query deer of the live screen, once a live screen is drawn."""
    expect(page.locator(f'{SCREEN}[data-state="live"]')).to_be_visible()
    return str(page.locator(SCREEN).get_attribute("data-query"))


def next_live(page: Page, after: str) -> str:
    """Waits for the live screen to move on from the query `after`; returns the new query."""
    expect(page.locator(f'{SCREEN}[data-state="live"]')).not_to_have_attribute("data-query", after)
    return shown_query(page)


def decided(page: Page, n: int) -> str:
    """Waits for the n-th decision of the session to be drawn (the next screen comes with it); returns
    the new live query, which may be the same deer again with other candidates after `n`."""
    expect(page.locator("#review-count")).to_contain_text(f"{n} decision{'s' if n != 1 else ''} this session")
    return shown_query(page)


def test_review_keys_and_undo(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    before = deer_total(api)
    first = api.get("/api/review/next", params={"k": 8})
    assert first.status_code == 200, first.text
    screen = first.json()
    assert screen["remaining"] >= 3 and screen["candidates"], "the feeder set should leave queries to review"

    page.goto("/review")
    q1 = shown_query(page)
    assert q1 == screen["query"]["deer"]["id"]
    cards = page.locator("#review-candidates .candidate")
    expect(cards).to_have_count(len(screen["candidates"]))
    expect(cards.locator(".rank")).to_have_text([str(c["rank"]) for c in screen["candidates"]])
    expect(page.locator("#review-query .query-crop")).to_have_count(len(screen["query"]["crops"]))
    label = "probability" if screen["calibrated"] else "similarity"
    expect(cards.first.locator(".score-label")).to_have_text(label)
    expect(page.locator("#review-count")).to_contain_text("0 decisions this session")
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    shot(page, artifacts_dir, "1-first-screen", full=False)
    shot(page, artifacts_dir, "1-first-screen-full")

    # `f`: the whole photo of the query's first crop, over the screen; Esc closes it and keys work again
    page.keyboard.press("f")
    photo = page.locator("dialog.photo-modal .photo-full")
    expect(photo).to_be_visible()
    page.wait_for_function(ALL_LOADED, arg="dialog.photo-modal img")
    shot(page, artifacts_dir, "2-whole-photo", full=False)
    page.keyboard.press("Escape")
    expect(page.locator("dialog.photo-modal")).to_have_count(0)

    # `1`: the query is candidate 1; the two become one deer
    target = screen["candidates"][0]["deer"]
    page.keyboard.press("1")
    q2 = decided(page, 1)
    assert q2 != q1
    assert deer_total(api) == before - 1
    assert api.get(f"/api/deer/{q1}").status_code == 404
    merged = api.get(f"/api/deer/{target['id']}").json()
    assert merged["sighting_count"] == target["sighting_count"] + screen["query"]["deer"]["sighting_count"]
    name = screen["query"]["deer"]["name"]
    expect(page.locator(".notice")).to_contain_text(f"Merged: {name} is now {target['name']}")

    # `n`: none of these; the query stays its own deer
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    page.keyboard.press("n")
    q3 = decided(page, 2)
    assert api.get(f"/api/deer/{q2}").status_code == 200
    assert deer_total(api) == before - 1

    # `s`: skip; not offered again
    page.keyboard.press("s")
    q4 = decided(page, 3)
    assert q4 != q3 and api.get(f"/api/deer/{q3}").status_code == 200
    again = api.get("/api/review/next", params={"k": 8})
    assert again.status_code == 204 or again.json()["query"]["deer"]["id"] != q3
    expect(page.locator("#review-pos")).to_have_text("screen 4 of 4")
    shot(page, artifacts_dir, "3-after-three-decisions", full=False)

    # `←`: the earlier screens, read-only, with what was decided
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#review-pos")).to_have_text("screen 3 of 4")
    expect(page.locator(SCREEN)).to_have_attribute("data-query", q3)
    expect(page.locator(SCREEN)).to_have_attribute("data-state", "decided")
    expect(page.locator("#review-decided")).to_contain_text("skipped, not comparable")
    expect(page.locator("#decide-none")).to_have_count(0)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#review-pos")).to_have_text("screen 2 of 4")
    expect(page.locator(SCREEN)).to_have_attribute("data-query", q2)
    expect(page.locator("#review-decided")).to_contain_text("none of these")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(SCREEN)).to_have_attribute("data-query", q1)
    expect(page.locator(SCREEN)).to_have_attribute("data-state", "decided")
    expect(page.locator("#review-decided")).to_contain_text(f"the same deer as candidate 1, {target['name']}")
    expect(page.locator("#review-candidates .candidate.chosen")).to_have_attribute("data-rank", "1")
    expect(page.locator("#review-pos")).to_have_text("screen 1 of 4")
    page.keyboard.press("1")  # an earlier screen is read-only: nothing happens
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    shot(page, artifacts_dir, "4-back-to-the-merge", full=False)
    assert deer_total(api) == before - 1

    # `u` there: the merge is undone and the deer count comes back
    page.keyboard.press("u")
    expect(page.locator(SCREEN)).to_have_attribute("data-state", "undone")
    expect(page.locator("#review-decided")).to_contain_text("Undone.")
    expect(page.locator(".notice").last).to_contain_text(f"Undone: {name} is its own deer again")
    assert deer_total(api) == before
    assert api.get(f"/api/deer/{target['id']}").json()["sighting_count"] == target["sighting_count"]
    expect(page.locator("#review-count")).to_contain_text("2 decisions this session")
    shot(page, artifacts_dir, "5-merge-undone", full=False)

    # `→` back to the live screen; `u` there undoes the last decision still standing (the skip)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.locator(SCREEN)).to_have_attribute("data-state", "live")
    page.keyboard.press("u")
    expect(page.locator(".notice").last).to_contain_text("Undone: the skip of")
    expect(page.locator("#review-count")).to_contain_text("1 decision this session")
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    shot(page, artifacts_dir, "6-live-after-undo", full=False)


def test_review_conflict_409_reloads_the_screen(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    page.goto("/review")
    query = shown_query(page)
    candidate = str(page.locator("#candidate-1").get_attribute("data-deer"))
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    # someone else merges the query into its first candidate while this screen is open
    merged = api.post(f"/api/deer/{candidate}/merge", json={"deer_ids": [query]})
    assert merged.status_code == 200, merged.text
    page.keyboard.press("n")
    conflict = page.locator("#review-conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text("Not recorded")
    expect(conflict).to_contain_text("nothing was lost")
    now = next_live(page, query)
    assert now != query
    expect(page.locator("#review-count")).to_contain_text("0 decisions this session")
    page.wait_for_function(ALL_LOADED, arg=f"{SCREEN} img")
    shot(page, artifacts_dir, "conflict", full=False)
    # the next decision goes through and the message goes away
    page.keyboard.press("s")
    next_live(page, now)
    expect(conflict).to_have_count(0)
    api.post(f"/api/merges/{merged.json()['merge_id']}/undo").raise_for_status()


def test_qc_mode_splits_a_sighting(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    a, b, c = dash.deer_with_own_photos(api, 3)
    api.post(f"/api/deer/{a['id']}/merge", json={"deer_ids": [b["id"], c["id"]]}).raise_for_status()
    qc = api.get(f"/api/deer/{a['id']}/qc").json()
    sightings = qc["sightings"]
    assert len(sightings) == 3
    before = deer_total(api)

    page.goto(f"/deer/{a['id']}")
    page.click("#qc-deer")
    expect(page).to_have_url(re.compile(rf"/review\?qc={a['id']}$"))
    current = page.locator("#qc-current")
    expect(current).to_have_attribute("data-detection", str(sightings[0]["detection_id"]))
    expect(page.locator("#qc-count")).to_contain_text("1 of 3")
    expect(page.locator("#qc-strip .qc-thumb")).to_have_count(3)
    page.wait_for_function(ALL_LOADED, arg="#qc img")
    shot(page, artifacts_dir, "qc", full=False)

    page.keyboard.press("ArrowRight")
    expect(current).to_have_attribute("data-detection", str(sightings[1]["detection_id"]))
    page.keyboard.press("ArrowLeft")
    expect(current).to_have_attribute("data-detection", str(sightings[0]["detection_id"]))

    # `x`: the worst-fitting sighting becomes a deer of its own
    worst = sightings[0]["detection_id"]
    page.keyboard.press("x")
    expect(page.locator(".notice")).to_contain_text("Split off as a new deer")
    expect(current).to_have_attribute("data-detection", str(sightings[1]["detection_id"]))
    assert deer_total(api) == before + 1
    left = [d["detection_id"] for d in api.get(f"/api/deer/{a['id']}/detections").json()]
    assert worst not in left and len(left) == 2
    page.keyboard.press("ArrowLeft")
    expect(current).to_have_attribute("data-state", "split")
    expect(page.locator("#qc-split-note")).to_contain_text("Split off as a new deer")
    expect(page.locator("#qc-split")).to_be_disabled()
    page.wait_for_function(ALL_LOADED, arg="#qc img")
    shot(page, artifacts_dir, "qc-split", full=False)

    # `u`: the split sighting goes back; Esc: back to the deer, with all three
    page.keyboard.press("u")
    expect(page.locator(".notice").last).to_contain_text(f"Put back into {a['name']}")
    expect(current).to_have_attribute("data-state", "kept")
    assert deer_total(api) == before
    page.keyboard.press("x")
    expect(current).to_have_attribute("data-detection", str(sightings[1]["detection_id"]))
    assert deer_total(api) == before + 1
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(rf"/deer/{a['id']}$"))
    expect(page.locator("#sightings .sighting")).to_have_count(2)
