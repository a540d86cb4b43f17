"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
uvicorn server on the feeder photos: 65 deer, each founded by one sighting.

What is tried: the gallery (loaded crops, filters, pages, empty states), a deer's page
(sighting grid, timeline, hour plot, cameras), renaming, merging with undo, moving a sighting
to another deer, editing a camera, the token prompt on 401, the upload page, and the shell handing
its token to this machine only. The review screen has its own tests: test_review_screen.py.
Screenshots of every page land in artifacts/<test name>/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Detection
from deerid.pipeline.ingest import ingest
from support.db import create_database
from support.paths import FEEDER, FEEDER_JSON
from support.server import start_server

TOKEN = "dash-token-456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ALL_LOADED = "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def feeder(pg_root: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One database with every feeder photo ingested, shared by the module's tests; the threshold is
    then set just above the closest call, so an upload of a copy of a photo matches automatically."""
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
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
        with deerid.sessions() as session:
            best = session.execute(sa.select(sa.func.max(Detection.similarity))).scalar_one()
    return settings.model_copy(update={"reid_threshold": best + 0.01})


@pytest.fixture(scope="module")
def server(feeder: Settings) -> Iterator[str]:
    base_url, stop = start_server(create_app(feeder))
    yield base_url
    stop()


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=server)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    crashes: list[str] = []
    tab.on("pageerror", lambda exc: crashes.append(str(exc)))
    tab.on("console", lambda m: m.type == "error" and "Security Policy" in m.text and crashes.append(m.text))
    yield tab
    context.close()
    assert not crashes, f"uncaught errors or blocked content in the page: {crashes}"


def shot(page: Page, folder: Path, name: str, *, full: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full)


def deer_with_own_photos(api: httpx.Client, n: int, skip: set[str] = frozenset()) -> list[dict]:  # type: ignore[type-arg]
    """n bucks that can be merged: no two of them boxed in the same photo."""
    chosen, photos = [], set()
    bucks = api.get("/api/deer", params={"sex": "buck", "sort": "name", "order": "asc", "limit": 100})
    for deer in bucks.json()["items"]:
        if deer["id"] in skip:
            continue
        mine = {d["image_id"] for d in api.get(f"/api/deer/{deer['id']}/detections").json()}
        if mine & photos:
            continue
        chosen.append(deer)
        photos |= mine
        if len(chosen) == n:
            return chosen
    raise AssertionError(f"fewer than {n} bucks on photos of their own")


def test_gallery_cards_filters_and_pages(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    total = api.get("/api/deer").json()["total"]
    assert total == 65
    page.goto("/")
    cards = page.locator(".deer-card")
    expect(cards).to_have_count(24)
    expect(page.locator(".summary")).to_have_text("65 deer")
    page.wait_for_function(ALL_LOADED, arg=".deer-card img")
    expect(page.locator('meta[name="deerid-token"]')).to_have_attribute("content", TOKEN)
    expect(page.locator("#token-state")).to_have_text("Token: from this machine")
    expect(page.locator("nav a.active")).to_have_text("Deer")
    shot(page, artifacts_dir, "gallery")

    page.get_by_role("button", name="Next ›").click()
    expect(page).to_have_url(re.compile(r"/\?page=2$"))
    expect(page.locator(".pager")).to_contain_text("25–48 of 65")
    expect(cards).to_have_count(24)

    bucks = api.get("/api/deer", params={"sex": "buck"}).json()["total"]
    page.select_option("#f-sex", "buck")
    expect(page.locator(".summary")).to_have_text(f"{bucks} deer match")
    expect(cards.locator(".badge")).to_have_text(["Buck"] * min(bucks, 24))
    cam = next(c for c in api.get("/api/cameras").json() if c["name"] == "VICTURE HC300")
    both = api.get("/api/deer", params={"sex": "buck", "camera_id": cam["id"]}).json()
    page.select_option("#f-camera", str(cam["id"]))
    expect(page.locator(".summary")).to_have_text(f"{both['total']} deer match")
    page.select_option("#f-sort", "name")
    expect(cards.locator(".name")).to_have_text(sorted(d["name"] for d in both["items"])[:24])
    page.wait_for_function(ALL_LOADED, arg=".deer-card img")
    shot(page, artifacts_dir, "gallery-filtered")

    page.fill("#f-q", "no such deer")
    expect(page.locator(".empty")).to_contain_text("No deer match these filters")
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator(".summary")).to_have_text("65 deer")

    first = cards.first
    name = first.locator(".name").inner_text()
    first.click()
    expect(page.locator("#deer-name")).to_contain_text(name)
    expect(page).to_have_url(re.compile(r"/deer/[0-9a-f-]{36}$"))
    page.go_back()
    expect(cards).to_have_count(24)

    # An empty collection, as a new install shows it.
    page.route(
        "**/api/deer?*",
        lambda route: route.fulfill(json={"total": 0, "limit": 24, "offset": 0, "items": []}),
    )
    page.goto("/")
    expect(page.locator(".empty h2")).to_have_text("No deer yet — upload photos")
    shot(page, artifacts_dir, "gallery-empty")


def test_deer_page_and_rename(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    deer = deer_with_own_photos(api, 1)[0]
    page.goto(f"/deer/{deer['id']}")
    expect(page.locator("#deer-name")).to_contain_text(deer["name"])
    expect(page.locator("#sightings .sighting")).to_have_count(deer["sighting_count"])
    expect(page.locator(".timeline-chart rect.bar:not(.empty)")).to_have_count(1)
    expect(page.locator(".hour-chart rect")).to_have_count(24)
    expect(page.locator("#places tbody tr")).to_have_count(len(deer["cameras"]))
    page.wait_for_function(ALL_LOADED, arg=".deer-head img, #sightings img")
    shot(page, artifacts_dir, "deer")

    page.click("#edit-deer")
    page.fill("#edit-name", "Big Eight")
    page.fill("#edit-notes", "Inward tine on the left beam.")
    shot(page, artifacts_dir, "deer-editing", full=False)
    page.click("#edit-save")
    expect(page.locator("#deer-name")).to_contain_text("Big Eight")
    expect(page.locator("#deer-notes")).to_have_text("Inward tine on the left beam.")
    expect(page.locator(".notice")).to_contain_text("Saved Big Eight")
    after = api.get(f"/api/deer/{deer['id']}").json()
    assert after["name"] == "Big Eight" and after["notes"] == "Inward tine on the left beam."
    shot(page, artifacts_dir, "deer-renamed")


def test_merge_then_undo(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    a, b = deer_with_own_photos(api, 2)
    page.goto(f"/deer/{a['id']}")
    page.click("#merge-deer")
    page.fill("#pick-q", b["name"])
    page.click(f'.pick-item[data-id="{b["id"]}"]')
    shot(page, artifacts_dir, "merge-picker", full=False)
    page.click("#pick-confirm")
    total = a["sighting_count"] + b["sighting_count"]
    expect(page.locator("#deer-sightings")).to_have_text(str(total))
    expect(page.locator("#sightings .sighting")).to_have_count(total)
    expect(page.locator(".undo-bar")).to_contain_text(f"Merged {b['name']} into {a['name']}")
    assert api.get(f"/api/deer/{b['id']}").status_code == 404
    assert api.get(f"/api/deer/{a['id']}").json()["sighting_count"] == total
    page.wait_for_function(ALL_LOADED, arg="#sightings img")
    shot(page, artifacts_dir, "deer-merged")

    page.click("#undo-merge")
    expect(page.locator("#deer-sightings")).to_have_text(str(a["sighting_count"]))
    expect(page.locator(".notice")).to_contain_text(f"Undone: {b['name']} is back")
    assert api.get(f"/api/deer/{b['id']}").json()["sighting_count"] == b["sighting_count"]
    shot(page, artifacts_dir, "deer-merge-undone")


def test_move_a_sighting_to_another_deer(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    a, b, c = deer_with_own_photos(api, 3)
    api.post(f"/api/deer/{a['id']}/merge", json={"deer_ids": [b["id"]]}).raise_for_status()
    dets = api.get(f"/api/deer/{a['id']}/detections").json()
    assert len(dets) == 2
    moving = dets[-1]["detection_id"]
    page.goto(f"/deer/{a['id']}")
    page.check(f'.sighting[data-detection="{moving}"] input.pick')
    expect(page.locator("#sighting-tools")).to_contain_text("1 sighting selected")
    page.click("#move-other")
    page.fill("#pick-q", c["name"])
    page.click(f'.pick-item[data-id="{c["id"]}"]')
    page.click("#pick-confirm")
    expect(page.locator(".notice")).to_contain_text(f"Moved 1 sighting to {c['name']}")
    expect(page.locator("#sightings .sighting")).to_have_count(1)
    moved = api.get(f"/api/deer/{c['id']}/detections").json()
    assert moving in [d["detection_id"] for d in moved]
    shot(page, artifacts_dir, "deer-after-move")


def test_cameras_edit(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    cams = api.get("/api/cameras").json()
    cam = cams[0]
    page.goto("/cameras")
    expect(page.locator("#cameras tbody tr")).to_have_count(len(cams))
    shot(page, artifacts_dir, "cameras")
    row = f"#cam-{cam['id']}"
    page.fill(f"{row}-name", "Woods feeder")
    page.fill(f"{row}-lat", "38.2")
    page.fill(f"{row}-lon", "-92.1")
    page.fill(f"{row}-offset", "-3660")
    expect(page.locator(f'tr[data-camera="{cam["id"]}"] .offset-hint')).to_have_text("−1 h 1 min")
    page.click(f"{row}-save")
    expect(page.locator(f'tr[data-camera="{cam["id"]}"] .row-status')).to_have_text("Saved ✓")
    saved = next(c for c in api.get("/api/cameras").json() if c["id"] == cam["id"])
    assert (saved["name"], saved["latitude"], saved["longitude"], saved["clock_offset_s"]) == (
        "Woods feeder",
        38.2,
        -92.1,
        -3660,
    )
    # What the API refuses is said in its words.
    page.fill(f"{row}-lat", "123")
    page.click(f"{row}-save")
    refused = page.locator(".notice-error")
    expect(refused).to_contain_text("Could not save Woods feeder: Not accepted: latitude")
    shot(page, artifacts_dir, "cameras-edited")


def test_token_prompt_on_401(page: Page, server: str, api: httpx.Client, artifacts_dir: Path) -> None:
    """As from another machine: no token in the page, so a change answers 401 and the page asks."""

    def strip_token(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace(TOKEN, "")
        route.fulfill(response=response, body=body)

    page.route(f"{server}/cameras", strip_token)
    cam = api.get("/api/cameras").json()[-1]
    page.goto("/cameras")
    expect(page.locator("#token-state")).to_have_text("Set token")
    page.fill(f"#cam-{cam['id']}-name", "Creek crossing")
    page.click(f"#cam-{cam['id']}-save")
    expect(page.locator(".notice-error")).to_contain_text("This needs the API token")
    expect(page.locator("dialog.modal")).to_be_visible()
    shot(page, artifacts_dir, "token-prompt", full=False)
    page.fill("#token-input", TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#token-state")).to_have_text("Token: saved")
    page.click(f"#cam-{cam['id']}-save")
    expect(page.locator(f'tr[data-camera="{cam["id"]}"] .row-status')).to_have_text("Saved ✓")
    assert next(c for c in api.get("/api/cameras").json() if c["id"] == cam["id"])["name"] == "Creek crossing"
    assert page.evaluate("localStorage.getItem('deerid-token')") == TOKEN


def test_upload_page(page: Page, api: httpx.Client, artifacts_dir: Path, tmp_path: Path) -> None:
    if "/api/uploads" not in api.get("/openapi.json").json()["paths"]:
        pytest.skip("this server has no /api/uploads yet")
    # A photo the server has not seen (same picture, one byte more) and its MegaDetector entry.
    name = "IMG_2257.JPG"
    photo = tmp_path / f"copy_{name}"
    shutil.copy(FEEDER / name, photo)
    with photo.open("ab") as f:
        f.write(b"\0")
    batch = json.loads(FEEDER_JSON.read_text())
    batch["images"] = [{**i, "file": photo.name} for i in batch["images"] if i["file"] == name]
    md = tmp_path / "md.json"
    md.write_text(json.dumps(batch))

    # The progress bars, on a status the server is made to answer mid-way.
    running = {"id": "0" * 8, "status": "running", "photos_total": 47, "photos_done": 47}
    running |= {"reid_total": 76, "reid_done": 30}
    page.route("**/api/uploads/00000000", lambda route: route.fulfill(json=running))
    page.goto("/upload?id=00000000")
    expect(page.locator("#up-reid-bar")).to_have_attribute("aria-valuenow", "30")
    expect(page.locator("#up-reid-bar")).to_have_attribute("aria-label", "Deer boxes re-identified")
    shot(page, artifacts_dir, "upload-progress")
    # While the info strips are read, the second bar says so rather than "re-identified".
    reading = running | {"id": "1" * 8, "reid_done": 12, "stage": "info strips"}
    page.route("**/api/uploads/11111111", lambda route: route.fulfill(json=reading))
    page.goto("/upload?id=11111111")
    expect(page.locator("#up-reid-bar")).to_have_attribute("aria-label", "Info strips read")
    expect(page.locator("#up-reid-bar")).to_have_attribute("aria-valuenow", "12")
    shot(page, artifacts_dir, "upload-strips")

    page.goto("/upload")
    page.set_input_files("#up-photos", [str(photo)])
    page.set_input_files("#up-detections", str(md))
    expect(page.locator("#up-chosen")).to_contain_text("1 photo")
    shot(page, artifacts_dir, "upload-chosen")
    page.click("#up-send")
    expect(page.locator("#up-state")).to_have_text("done", timeout=60_000)
    summary = page.locator("#up-summary")
    expect(summary).to_contain_text("New photos")
    expect(summary.locator("tr", has_text="Matched to a known deer")).to_contain_text("1")
    expect(page).to_have_url(re.compile(r"/upload\?id=[0-9a-f-]{36}$"))
    shot(page, artifacts_dir, "upload-done")


def test_shell_hands_its_token_to_this_machine_only(feeder: Settings) -> None:
    app = create_app(feeder)
    meta = f'<meta name="deerid-token" content="{TOKEN}">'
    local = TestClient(app, base_url="http://localhost:8000")
    for path in ("/", "/review", "/cameras", "/upload", "/deer/5f0c7e0e-4d1b-4c64-9d55-2d0f1f7b3a11"):
        shell = local.get(path)
        assert shell.status_code == 200 and meta in shell.text, path
    assert local.get("/").headers["cache-control"] == "no-store"
    script = local.get("/static/js/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert local.get("/static/style.css").headers["content-type"].startswith("text/css")
    for bad in ("/static/../dashboard.py", "/static/%2e%2e/dashboard.py", "/static/nope.js", "/static/"):
        assert local.get(bad).status_code == 404, bad
    remote = TestClient(app, base_url="http://deer.example:8000", client=("192.0.2.7", 5000))
    far = remote.get("/")
    assert far.status_code == 200 and TOKEN not in far.text and 'name="deerid-token"' not in far.text
    # A name rebound to 127.0.0.1 (DNS rebinding) gets no token either.
    rebound = TestClient(app, base_url="http://attacker.example:8000").get("/")
    assert rebound.status_code == 200 and TOKEN not in rebound.text


def test_season_page_map_and_activity_plots(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    """Tried: with every camera placed, the season page of the newest photo (from 1 Aug 2024)
    lists the season's deer with their counts and "new this week" badges and draws each camera
    as a dot on a tile-free map; the sex filter narrows the list; "earlier season" moves a year
    back. A deer's page draws its visits by daylight (5 phases), moon (8) and season week."""
    for n, cam in enumerate(api.get("/api/cameras").json()):
        placed = api.patch(
            f"/api/cameras/{cam['id']}", json={"latitude": 39.96 + 0.004 * n, "longitude": -83.0 + 0.006 * n}
        )
        assert placed.status_code == 200, placed.text
    season = api.get("/api/season").json()
    assert season["start"] == "2024-08-01" and season["deer"]
    page.goto("/season")
    expect(page.locator("h1")).to_have_text("Season 2024-08-01 – 2025-07-31")
    expect(page.locator("#season-deer tbody tr")).to_have_count(len(season["deer"]))
    expect(page.locator("#season-stats .stat").nth(0)).to_contain_text(f"{season['bucks']}bucks seen")
    expect(page.locator("#season-deer .badge.new")).to_have_count(season["new_this_week"])
    visited = [c for c in season["cameras"] if c["visits"]]
    expect(page.locator(".camera-map .camera-dot")).to_have_count(len(season["cameras"]))
    for c in visited:
        expect(page.locator(f'.camera-map .camera-dot[data-camera="{c["camera"]["id"]}"]')).to_contain_text(
            f"({c['visits']})"
        )
    page.wait_for_function(ALL_LOADED, arg="#season-deer img")
    shot(page, artifacts_dir, "season")

    does = [d for d in season["deer"] if d["deer"]["sex"] == "doe"]
    page.select_option("#season-sex", "doe")
    expect(page).to_have_url(re.compile(r"/season\?sex=doe$"))
    expect(page.locator("#season-deer tbody tr")).to_have_count(len(does))
    page.click("#season-prev")
    expect(page.locator("h1")).to_have_text("Season 2023-08-01 – 2024-07-31")
    shot(page, artifacts_dir, "season-earlier")

    deer = season["deer"][0]["deer"]
    visits = api.get(f"/api/deer/{deer['id']}/activity").json()
    page.goto(f"/deer/{deer['id']}")
    expect(page.locator(".daylight-chart rect")).to_have_count(5)
    expect(page.locator(".moon-chart rect")).to_have_count(8)
    expect(page.locator(".week-chart rect.bar:not(.empty)")).to_have_count(len(visits["by_week"]))
    expect(page.locator(".charts-note")).to_contain_text(f"{visits['visits']} visit")
    page.wait_for_function(ALL_LOADED, arg=".deer-head img, #sightings img")
    shot(page, artifacts_dir, "deer-activity")


def test_star_filter_and_years_side_by_side(page: Page, api: httpx.Client, artifacts_dir: Path) -> None:
    """Tried: starring a deer from its page, the gallery's "starred only" filter, linking another
    profile as the same deer in another year through the picker (both shown side by side), then
    unlinking it; each change read back through the API."""
    a, b = deer_with_own_photos(api, 2)
    page.goto(f"/deer/{a['id']}")
    expect(page.locator("#years")).to_contain_text("Link another year")
    page.click("#star-deer")
    expect(page.locator("#star-deer")).to_have_text("★ Starred")
    expect(page.locator("#deer-name .star")).to_have_count(1)
    assert api.get(f"/api/deer/{a['id']}").json()["starred"] is True

    starred = api.get("/api/deer", params={"starred": "true"}).json()["items"]
    page.goto("/")
    page.check("#f-starred")
    expect(page).to_have_url(re.compile(r"[?&]starred=1"))
    expect(page.locator("#deer-grid .deer-card")).to_have_count(len(starred))
    expect(page.locator(f'#deer-grid .deer-card[data-id="{a["id"]}"] .star')).to_have_count(1)
    shot(page, artifacts_dir, "gallery-starred")

    page.goto(f"/deer/{a['id']}")
    page.click("#link-year")
    page.fill("#pick-q", b["name"])
    page.click(f'.pick-item[data-id="{b["id"]}"]')
    page.click("#pick-confirm")
    expect(page.locator("#years .year-card")).to_have_count(2)
    expect(page.locator(f'#years .year-card[data-id="{b["id"]}"]')).to_contain_text(b["name"])
    assert [y["deer"]["id"] for y in api.get(f"/api/deer/{b['id']}/years").json()] != [b["id"]]
    page.wait_for_function(ALL_LOADED, arg="#years img")
    shot(page, artifacts_dir, "deer-years")

    page.click(f'#years .year-card[data-id="{b["id"]}"] .unlink-year')
    expect(page.locator("#years .year-card")).to_have_count(0)
    assert [y["deer"]["id"] for y in api.get(f"/api/deer/{b['id']}/years").json()] == [b["id"]]
    page.click("#star-deer")
    expect(page.locator("#star-deer")).to_have_text("☆ Star")
