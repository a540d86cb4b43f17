from __future__ import annotations

from pathlib import Path

import pytest

from deerid.ingest.megadetector import load_detections
from deerid.ingest.paths import match_files, normalise_relpath
from deerid.ingest.scan import iter_photos

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("IMG_0001.JPG", "IMG_0001.JPG"),
        ("./IMG_0001.JPG", "IMG_0001.JPG"),
        (".\\cam1\\IMG_0001.JPG", "cam1/IMG_0001.JPG"),
        ("cam1//sub/./IMG_0001.JPG", "cam1/sub/IMG_0001.JPG"),
        ("././cam1/IMG_0001.JPG ", "cam1/IMG_0001.JPG"),
        ("/data/cam1/IMG_0001.JPG", "/data/cam1/IMG_0001.JPG"),
        ("C:\\traps\\cam1\\IMG_0001.JPG", "C:/traps/cam1/IMG_0001.JPG"),
        ("../cam1/IMG_0001.JPG", "../cam1/IMG_0001.JPG"),
    ],
)
def test_normalise_relpath(written: str, normal: str) -> None:
    assert normalise_relpath(written) == normal


@pytest.mark.parametrize("bad", ["", "   ", "./", "\\\\"])
def test_normalise_relpath_rejects_empty(bad: str) -> None:
    with pytest.raises(ValueError, match="empty path"):
        normalise_relpath(bad)


def test_match_files_exact_suffix_and_ambiguous() -> None:
    photos = ["cam1/IMG_0001.JPG", "cam2/IMG_0001.JPG", "cam2/IMG_0002.JPG", "top.jpg"]
    written = [
        "cam1\\IMG_0001.JPG",  # exact after normalising
        "C:\\traps\\site\\cam2\\IMG_0001.JPG",  # absolute: suffix cam2/IMG_0001.JPG
        "IMG_0002.JPG",  # detector ran inside cam2
        "IMG_0001.JPG",  # in two folders: not guessed
        "cam3/IMG_0009.JPG",  # no such photo
        "./top.jpg",
    ]
    assert match_files(written, photos) == {
        "cam1\\IMG_0001.JPG": "cam1/IMG_0001.JPG",
        "C:\\traps\\site\\cam2\\IMG_0001.JPG": "cam2/IMG_0001.JPG",
        "IMG_0002.JPG": "cam2/IMG_0002.JPG",
        "./top.jpg": "top.jpg",
    }


def test_every_real_detections_entry_matches_a_scanned_photo() -> None:
    for folder, detections in (
        (DATA / "trailcam" / "feeder", DATA / "trailcam" / "feeder.detections.json"),
        (DATA / "megadetector", DATA / "megadetector" / "mdv5a.detections.json"),
    ):
        photos = [rel for _, rel in iter_photos(folder)]
        files = [image.file for image in load_detections(detections).images]
        matched = match_files(files, photos)
        assert sorted(matched) == sorted(files)
        assert all(matched[f] == f for f in files)
