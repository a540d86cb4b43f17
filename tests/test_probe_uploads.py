"""Probe findings on browser uploads (PROBE.md F22 second half, F28 second half), through the real app
(FastAPI TestClient, whose context runs the app's lifespan) on real feeder photos and a real PostgreSQL.

What is tried: uploads a killed server left half-done are finished when the app starts, with nobody
asking, including one whose pid now belongs to another (newer) process, as a container's server is
pid 1 after every restart; a failed upload is not retried by itself; a second start does not resume
an upload again; an upload's error never shows the server's absolute paths to an API reader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from deerid.api.main import create_app
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Image
from deerid.pipeline.uploads import resume_interrupted
from support.paths import FEEDER, FEEDER_JSON

TOKEN = "uploads-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def configured(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_token": TOKEN})


@pytest.fixture
def client(configured: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(configured), base_url="http://localhost") as c:
        yield c


def _interrupted(settings: Settings, names: tuple[str, ...], **status: object) -> str:
    """What a server SIGKILLed half-way through an upload leaves: the files and a `running` status."""
    upload_id = str(uuid.uuid4())
    folder = settings.data_dir / "uploads" / upload_id
    (folder / "photos").mkdir(parents=True)
    for name in names:
        shutil.copy2(FEEDER / name, folder / "photos" / name)
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    (folder / "detections.json").write_text(json.dumps(data))
    (folder / "status.json").write_text(
        json.dumps(
            {"id": upload_id, "status": "running", "photos_total": len(names), "photos_done": 0} | status
        )
    )
    return upload_id


def _wait(client: TestClient, upload_id: str, timeout: float = 120) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/api/uploads/{upload_id}").json()
        if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return state  # type: ignore[no-any-return]
        time.sleep(0.2)


def test_interrupted_uploads_resume_when_the_server_starts(configured: Settings) -> None:
    """F22: an upload interrupted by a server restart stayed `interrupted` until someone POSTed
    .../resume. Two are left here: one of a dead pid, one whose pid is alive again as a newer process
    (pid reuse, which kept it `running` for ever). Starting the app finishes both by itself; a failed
    upload is left for the user to retry; a second start resumes nothing twice."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = _interrupted(configured, ("IMG_2257.JPG",), pid=dead.pid, pid_started=time.time() - 60)
    # This pid runs, but the process that owned the upload started an hour before it.
    reused = _interrupted(configured, ("IMG_2260.JPG",), pid=os.getpid(), pid_started=time.time() - 3600)
    failed = _interrupted(configured, ("IMG_2263.JPG",), pid=dead.pid)
    failed_status = configured.data_dir / "uploads" / failed / "status.json"
    failed_status.write_text(json.dumps(json.loads(failed_status.read_text()) | {"status": "failed"}))

    with TestClient(create_app(configured), base_url="http://localhost") as client:
        for upload_id in (killed, reused):
            state = _wait(client, upload_id)
            assert state["status"] == "done", state
            assert state["report"]["photos_new"] == 1 and state["report"]["reidentified"] >= 1, state
            assert state["resumed_at"]
            assert state["stage"] == "re-identifying"  # the last pass that filled the second bar
        assert client.get(f"/api/uploads/{failed}").json()["status"] == "failed"
    with Deerid(configured) as deerid:
        with deerid.sessions() as s:
            assert s.execute(sa.select(sa.func.count()).select_from(Image)).scalar_one() == 2

        # Nothing is interrupted any more: another start claims nothing.
        assert resume_interrupted(deerid) is None


def test_upload_errors_show_no_server_paths(configured: Settings, client: TestClient) -> None:
    """F28: an upload's status error named absolute server paths (`/tmp/rel/data/twoA/uploads/<id>/
    detections.json: ...`) to API readers. It is relative to the upload folder now."""
    started = client.post(
        "/api/uploads",
        files=[
            ("files", ("IMG_2257.JPG", (FEEDER / "IMG_2257.JPG").read_bytes(), "image/jpeg")),
            ("detections", ("md.json", b"[]", "application/json")),
        ],
        headers=AUTH,
    )
    assert started.status_code == 202, started.text
    state = _wait(client, started.json()["id"])
    assert state["status"] == "failed", state
    assert "detections.json" in state["error"] and "top level is a JSON list" in state["error"], state
    text = json.dumps(state)
    for path in {str(configured.data_dir), str(configured.data_dir.resolve())}:
        assert path not in text, text
    assert "/uploads/" not in text, text


def test_a_damaged_status_file_is_one_clear_answer_and_never_stops_a_start(configured: Settings) -> None:
    """Tried: one upload whose status.json is cut in half, one whose status is a word no version
    writes, beside an interrupted one. The server still starts and finishes the good one; each bad
    one answers 503 naming the file and what to do, not a 500."""
    good = _interrupted(configured, ("IMG_2257.JPG",), pid=999_999_999)
    cut = _interrupted(configured, ("IMG_2260.JPG",))
    cut_status = configured.data_dir / "uploads" / cut / "status.json"
    cut_status.write_text(cut_status.read_text()[:20])
    odd = _interrupted(configured, ("IMG_2263.JPG",), status="paused")

    with TestClient(create_app(configured), base_url="http://localhost") as client:
        assert _wait(client, good)["status"] == "done"
        for upload_id in (cut, odd):
            got = client.get(f"/api/uploads/{upload_id}")
            assert got.status_code == 503, got.text
            assert "status.json cannot be read" in got.json()["detail"] and "remove" in got.json()["detail"]
            assert str(configured.data_dir) not in got.json()["detail"]
