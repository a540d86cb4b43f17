"""Ingest robustness: the probe's findings (../shared/reliability/PROBE.md) on bad files,
bad names and hostile detections files, each reproduced on real files and a real database.

One bad entry never aborts an ingest: it is skipped with a reason a person can read, and
everything else is stored."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.tables import Detection, Image
from deerid.ingest.scan import iter_photos
from deerid.pipeline.ingest import IngestReport, ingest
from deerid.reid.service import embed_detections
from support.env import subprocess_env
from support.paths import FEEDER, SHARED

DEERID = str(Path(sys.executable).parent / "deerid")
PROBE_JSON = SHARED / "reliability" / "json"
PHOTO_A, PHOTO_B = FEEDER / "IMG_2257.JPG", FEEDER / "IMG_2260.JPG"


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEERID, *args], env=subprocess_env(settings), capture_output=True, text=True)


def stored_paths(deerid: Deerid) -> list[str]:
    with deerid.sessions() as session:
        return sorted(session.execute(sa.select(Image.path)).scalars())


def reasons(report: IngestReport | dict) -> dict[str, str]:  # type: ignore[type-arg]
    skipped = report.skipped if isinstance(report, IngestReport) else report["skipped"]
    return {item["file"]: item["reason"] for item in skipped}


def md_file(path: Path, images: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text(
        json.dumps(
            {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"}, "images": images}
        )
    )
    return path


AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
BOX = {"category": "1", "conf": 0.9, "bbox": [0.0, 0.28, 0.3, 0.665]}


def test_non_utf8_file_name_is_skipped_and_the_rest_is_stored(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F1: a photo named `bad\\xff\\xfe.jpg` (bytes that are not UTF-8, as a camera or an old
    FAT card can write) crashed the whole ingest in the database driver. Tried: that file
    plus a good photo sorted after it, through the CLI with --json."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_A, os.path.join(os.fsencode(photos), b"bad\xff\xfe.jpg"))
    shutil.copy(PHOTO_B, photos / "good.jpg")

    out = run_cli(settings, "ingest", str(photos), "--no-reid", "--json")

    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["photos_new"] == 1
    assert list(reasons(summary)) == ["bad\\xff\\xfe.jpg"]
    assert "not valid UTF-8" in reasons(summary)["bad\\xff\\xfe.jpg"]
    assert "bad\\xff\\xfe.jpg: file name is not valid UTF-8" in out.stderr
    assert stored_paths(deerid) == [str((photos / "good.jpg").resolve())]


def test_symlink_loop_is_skipped_and_the_rest_is_stored(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F2: `l1.jpg -> l2.jpg -> l1.jpg` raised ELOOP out of the scan and stored nothing. This
    also checks that the pipeline hands scan errors to the report (the F3 path too). Tried: the
    loop beside a good photo and inside a sub-folder, through the pipeline."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(PHOTO_A, photos / "a.jpg")
    (photos / "l1.jpg").symlink_to("l2.jpg")
    (photos / "l2.jpg").symlink_to("l1.jpg")
    (photos / "sub" / "self.jpg").symlink_to("self.jpg")

    report = ingest(deerid, photos, reidentify=False)

    assert report.photos == report.photos_new == 1
    found = reasons(report)
    assert set(found) == {"l1.jpg", "l2.jpg", "sub/self.jpg"}
    assert all("symbolic link loop" in reason for reason in found.values())
    assert stored_paths(deerid) == [str((photos / "a.jpg").resolve())]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the scan as `nobody` (setpriv)")
def test_unreadable_subfolder_is_skipped_for_a_real_user() -> None:
    """F3: an unreadable sub-folder (`chmod 000`) made `os.scandir` raise PermissionError out of
    the whole ingest. Root reads everything, so the scan runs as `nobody` with setpriv, over a
    real tree. The pipeline passes the same `on_skip` (checked end to end by the F2 test)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    root = Path(tempfile.mkdtemp(prefix="deerid-f3-"))
    try:
        root.chmod(0o755)
        shutil.copy(PHOTO_A, root / "a.jpg")
        (root / "locked").mkdir()
        shutil.copy(PHOTO_B, root / "locked" / "b.jpg")
        (root / "z.jpg").write_bytes(b"x")
        for path in (root / "a.jpg", root / "z.jpg"):
            path.chmod(0o644)
        (root / "locked").chmod(0)
        script = (
            "import json, sys\n"
            "from deerid.ingest.scan import iter_photos\n"
            "skips = []\n"
            "rels = [rel for _, rel in iter_photos(sys.argv[1], on_skip=lambda f, r: skips.append([f, r]))]\n"
            "print(json.dumps({'rels': rels, 'skips': skips}))\n"
        )
        src = str(Path(__file__).resolve().parents[1] / "src")
        # The scan needs only the standard library: any Python `nobody` may run will do.
        python = next(
            (
                exe
                for exe in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3")
                if subprocess.run([*AS_NOBODY, exe, "-c", "pass"], capture_output=True).returncode == 0
            ),
            None,
        )
        if python is None:
            pytest.skip("no Python that the user nobody may run")
        out = subprocess.run(
            [*AS_NOBODY, python, "-c", script, str(root)],
            env={**os.environ, "PYTHONPATH": src},
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["rels"] == ["a.jpg", "z.jpg"]
        assert result["skips"] == [["locked", "permission denied; skipped"]]
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_decompression_bomb_is_skipped_quietly_and_big_photos_are_kept(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F4, F29: a 48 KB PNG of 20000x20000 px (400 MP) raised DecompressionBombError through
    the CLI and stored nothing else; a 100 MP image was stored but printed Pillow's raw
    DecompressionBombWarning. Tried: bomb, 100 MP image and a trail-camera photo, via the CLI."""
    photos = tmp_path / "photos"
    photos.mkdir()
    PILImage.new("1", (20000, 20000)).save(photos / "bomb.png", optimize=True)
    PILImage.new("1", (10000, 10000)).save(photos / "big.png", optimize=True)
    shutil.copy(PHOTO_A, photos / "good.jpg")

    out = run_cli(settings, "ingest", str(photos), "--no-reid", "--json")

    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["photos"] == 3 and summary["photos_new"] == 2
    assert list(reasons(summary)) == ["bomb.png"]
    assert "400 megapixels" in reasons(summary)["bomb.png"]
    assert "decompression bomb" in reasons(summary)["bomb.png"]
    assert "Warning" not in out.stderr and "Traceback" not in out.stderr
    assert stored_paths(deerid) == sorted(str((photos / n).resolve()) for n in ("big.png", "good.jpg"))


def test_absurdly_nested_detections_file_is_one_error_line(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F6: a detections file nested 200,000 levels deep gave a RecursionError traceback and rc 1;
    the README promises one error line and exit code 2. Tried: that file through the CLI."""
    deep = tmp_path / "deep.json"
    deep.write_text(
        '{"info":{"format_version":"1.4"},"detection_categories":{"1":"animal"},"images":[],"x":'
        + "[" * 200000
        + "]" * 200000
        + "}"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_A, photos)

    out = run_cli(settings, "ingest", str(photos), "--detections", str(deep))

    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nested too deeply" in lines[0], out.stderr
    assert stored_paths(deerid) == []


def test_markup_in_user_text_is_printed_as_written(settings: Settings, tmp_path: Path) -> None:
    """F7: user text was read as Rich markup. A detections entry `DCIM[/]100MEDIA/IMG_0001.JPG`
    crashed the summary (MarkupError) and `--json` printed no JSON line; a folder called
    `[north feeder]` vanished from skip messages, and skip reasons lost `[x_min, ...]`. Tried:
    probe's markup.json and bbox_gt1.json, a junk photo under `[north feeder]`, with and
    without --json, and a missing photo folder whose name holds `[/]`."""
    photos = tmp_path / "photos"
    (photos / "[north feeder]").mkdir(parents=True)
    for name in ("IMG_2257.JPG", "IMG_2260.JPG", "IMG_2263.JPG"):
        shutil.copy(FEEDER / name, photos)
    (photos / "[north feeder]" / "IMG_0002.JPG").write_text("junk")

    out = run_cli(
        settings, "ingest", str(photos), "-d", str(PROBE_JSON / "markup.json"), "--no-reid", "--json"
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["photos_new"] == 3
    assert "DCIM[/]100MEDIA/IMG_0001.JPG: listed in the detections file but not found" in out.stderr
    assert (
        f"[north feeder]/IMG_0002.JPG: cannot read photo {photos.resolve()}/[north feeder]/IMG_0002.JPG"
        in (out.stderr)
    )

    out = run_cli(settings, "ingest", str(photos), "-d", str(PROBE_JSON / "bbox_gt1.json"), "--no-reid")
    assert out.returncode == 0, out.stderr
    assert "bbox must be 4 numbers [x_min, y_min, width, height], got [0.1, 0.1, 0.5, 0.5, 0.9]" in out.stdout

    out = run_cli(settings, "ingest", str(tmp_path / "DCIM[/]x"), "--no-reid")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"photo folder not found: {tmp_path}/DCIM[/]x" in out.stderr


def test_two_spellings_of_one_photo_are_reported(settings: Settings, deerid: Deerid, tmp_path: Path) -> None:
    """F16: `C:\\cards\\small\\IMG_2257.JPG` (1 box) and `small/IMG_2257.JPG` (2 boxes) name one
    photo; the second silently replaced the first. Tried: the probe's dup_spelling.json on a
    folder `small` holding the photo, through the pipeline."""
    photos = tmp_path / "small"
    photos.mkdir()
    shutil.copy(PHOTO_A, photos)

    report = ingest(deerid, photos, PROBE_JSON / "dup_spelling.json", reidentify=False)

    assert report.detections_new == 1  # the first entry is kept
    reason = reasons(report)["small/IMG_2257.JPG"]
    assert "names the same photo (IMG_2257.JPG) as the earlier entry" in reason
    assert "'C:/cards/small/IMG_2257.JPG'" in reason and "ignored" in reason


def test_unicode_normalisation_and_letter_case_still_match(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F25: the detections file says `Hirsch_ä.jpg` (NFC) and `img_2260.jpg`; the disk holds the
    NFD spelling macOS writes and `IMG_2260.JPG`. Both were "not found" and their boxes dropped.
    Tried: the probe's norm.json; and two photos differing only in case, which stay unmatched
    with a reason that names both."""
    photos = tmp_path / "norm"
    photos.mkdir()
    shutil.copy(PHOTO_A, photos / unicodedata.normalize("NFD", "Hirsch_ä.jpg"))
    shutil.copy(PHOTO_B, photos / "IMG_2260.JPG")

    report = ingest(deerid, photos, PROBE_JSON / "norm.json", reidentify=False)

    assert report.skipped == []
    assert report.detections_new == 2

    shutil.copy(PHOTO_B, photos / "Img_2260.jpg")
    md = md_file(tmp_path / "case.json", [{"file": "img_2260.JPG", "detections": [BOX]}])
    report = ingest(deerid, photos, md, reidentify=False)
    reason = reasons(report)["img_2260.JPG"]
    assert "names 2 photos" in reason and "IMG_2260.JPG" in reason and "Img_2260.jpg" in reason


def test_odd_files_and_a_file_as_the_folder_get_clear_messages(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F26: a dangling symlink and a FIFO named .jpg were reported as "not found" though they
    exist; `deerid ingest notjson.json` said "photo folder not found". Tried: both odd files
    listed in a detections file beside a good photo (pipeline), and a file as the folder (CLI)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_A, photos / "good.jpg")
    (photos / "dangling.jpg").symlink_to("/nonexistent/x.jpg")
    os.mkfifo(photos / "fifo.jpg")
    md = md_file(
        tmp_path / "md.json",
        [{"file": name, "detections": [BOX]} for name in ("good.jpg", "dangling.jpg", "fifo.jpg")],
    )

    report = ingest(deerid, photos, md, reidentify=False)  # a FIFO read would hang: it is never opened

    assert report.photos_new == 1 and report.detections_new == 1
    found = [(item["file"], item["reason"]) for item in report.skipped]
    assert (
        "dangling.jpg",
        "dangling symbolic link (its target /nonexistent/x.jpg does not exist); skipped",
    ) in found
    assert ("fifo.jpg", "a FIFO (named pipe), not a photo file; skipped") in found

    notjson = PROBE_JSON / "notjson.json"
    out = run_cli(settings, "ingest", str(notjson))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{notjson} is a file, not a folder of photos (a detections file goes after --detections)" in (
        " ".join(out.stderr.split())
    )


class CountingEmbedder:
    """The real embedder, noting at each batch how many PIL images are alive and how much numpy
    memory (the squashed crops waiting in the decode queue, the batch) is held."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.model_id, self.input_size, self.dim = inner.model_id, inner.input_size, inner.dim
        self.batches: list[int] = []
        self.alive: list[int] = []
        self.traced: list[int] = []

    def embed(self, crops):  # type: ignore[no-untyped-def]
        gc.collect()
        with warnings.catch_warnings():  # isinstance on some torch objects warns about deprecations
            warnings.simplefilter("ignore")
            self.alive.append(sum(isinstance(o, PILImage.Image) for o in gc.get_objects()))
        self.traced.append(tracemalloc.get_traced_memory()[0])
        self.batches.append(len(crops))
        return self.inner.embed(crops)


def test_crops_of_one_photo_are_embedded_in_bounded_batches(
    settings: Settings, deerid: Deerid, tmp_path: Path
) -> None:
    """F30: every crop of a photo was held in memory before embedding (2,000 boxes: 2.7 GB). Now
    crops are cut one at a time from one decode, squashed to the input size as they are cut, and
    at most a bounded queue of them waits for the model. Tried: 240 deer boxes on one real feeder
    photo, embedded by the real model at its input size (240 px: all 240 crops held at once would
    be 41 MB of numpy arrays), counting live PIL images and numpy memory (tracemalloc traces
    numpy's allocations) at every batch."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_A, photos)
    rng = np.random.default_rng(8)
    boxes = [
        {"category": "1", "conf": 0.9, "bbox": [float(x), float(y), 0.3, 0.3]}
        for x, y in rng.uniform(0.0, 0.7, size=(240, 2))
    ]
    md = md_file(tmp_path / "many.json", [{"file": "IMG_2257.JPG", "detections": boxes}])
    report = ingest(deerid, photos, md, reidentify=False)
    assert report.detections_new == 240 and report.too_small == 0

    factory = deerid.sessions
    with factory() as session:
        ids = list(session.execute(sa.select(Detection.id)).scalars())
    embedder = CountingEmbedder(deerid.embedder())
    crop_bytes = embedder.input_size**2 * 3

    tracemalloc.start()
    try:
        errors = embed_detections(factory, ids, embedder, min_size=settings.min_crop_size, batch_size=16)
    finally:
        tracemalloc.stop()

    assert errors == {}
    assert embedder.batches == [16] * 15
    # The decoded photo, its oriented view and the crops being cut and squashed: never a batch.
    assert max(embedder.alive) <= 8, embedder.alive
    # One batch in the model, at most two batches queued by the decode thread, one being written.
    assert max(embedder.traced) < 5 * 16 * crop_bytes, (max(embedder.traced), 240 * crop_bytes)
    with factory() as session:
        assert (
            session.execute(
                sa.select(sa.func.count(Detection.id)).where(Detection.embedding.is_not(None))
            ).scalar()
            == 240
        )


def test_scan_reports_without_raising_when_asked(tmp_path: Path) -> None:
    """F1, F2, F26 at the scanner: with `on_skip` every odd entry is reported in words and the
    walk goes on; without it the old contract holds (errors raise, odd files are ignored)."""
    shutil.copy(PHOTO_A, tmp_path / "a.jpg")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "gone.jpg").symlink_to("nowhere.jpg")
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"cam\xe9"))
    shutil.copy(PHOTO_B, os.path.join(os.fsencode(tmp_path), b"cam\xe9", b"b.jpg"))

    skips: list[tuple[str, str]] = []
    rels = [rel for _, rel in iter_photos(tmp_path, on_skip=lambda f, r: skips.append((f, r)))]

    assert rels == ["a.jpg"]
    assert [f for f, _ in skips] == ["cam\\xe9", "gone.jpg", "loop.jpg"]
    assert "folder name is not valid UTF-8" in skips[0][1]
    with pytest.raises(OSError):
        list(iter_photos(tmp_path))
