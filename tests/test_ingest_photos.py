from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from deerid.ingest.photos import PhotoReadError, parse_exif_datetime, read_photo_meta

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FEEDER = DATA / "trailcam" / "feeder"
FEEDER_JSON = DATA / "trailcam" / "feeder.detections.json"
VICTURE = FEEDER / "IMG_2263.JPG"  # 1920x1440, orientation 1

_EXIF_IFD = 0x8769


def _save_with_exif(
    image: Image.Image, path: Path, tags: dict[int, object], exif_ifd: dict[int, object]
) -> Path:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    sub = exif.get_ifd(_EXIF_IFD)
    for tag, value in exif_ifd.items():
        sub[tag] = value
    image.save(path, exif=exif, quality=90)
    return path


def test_feeder_exif_agrees_with_the_ground_truth_for_all_47_photos() -> None:
    truth = {image["file"]: image for image in json.loads(FEEDER_JSON.read_text())["images"]}
    assert len(truth) == 47

    for name, image in truth.items():
        meta = read_photo_meta(FEEDER / name)
        camera = " ".join(p for p in (meta.camera_make, meta.camera_model) if p) or None
        assert camera == image["camera"], name
        with Image.open(FEEDER / name) as pil:
            assert (meta.width, meta.height) == pil.size, name
        if image["datetime"] is None:
            continue
        assert meta.captured_at_source == "exif_datetime_original", name
        assert meta.captured_at == datetime.fromisoformat(image["datetime"]), name
        assert meta.captured_at.tzinfo is None


def test_photo_without_usable_exif_falls_back_to_file_mtime() -> None:
    path = FEEDER / "IMG_0988.JPG"
    meta = read_photo_meta(path)

    assert meta.captured_at_source == "file_mtime"
    assert meta.captured_at == datetime.fromtimestamp(path.stat().st_mtime)
    assert (meta.camera_make, meta.camera_model) == (None, None)
    assert (meta.width, meta.height) == (1920, 1440)


def test_datetime_fallback_order_and_text_cleanup(tmp_path: Path) -> None:
    with Image.open(VICTURE) as source:
        small = source.reduce(8)

    zeroed_original = _save_with_exif(
        small,
        tmp_path / "a.jpg",
        {0x010F: "RECONYX\x00\x00", 0x0110: "HC500 HYPERFIRE\x00\x00\x00\x00", 0x0132: "2020:01:01 00:00:03"},
        {0x9003: "0000:00:00 00:00:00", 0x9004: "2020:01:01 00:00:02"},
    )
    meta = read_photo_meta(zeroed_original)
    assert (meta.captured_at, meta.captured_at_source) == (
        datetime(2020, 1, 1, 0, 0, 2),
        "exif_datetime_digitized",
    )
    assert (meta.camera_make, meta.camera_model) == ("RECONYX", "HC500 HYPERFIRE")

    only_ifd0 = _save_with_exif(
        small, tmp_path / "b.jpg", {0x010F: "   ", 0x0132: "2020:01:01 00:00:03\x00"}, {}
    )
    meta = read_photo_meta(only_ifd0)
    assert (meta.captured_at, meta.captured_at_source) == (datetime(2020, 1, 1, 0, 0, 3), "exif_datetime")
    assert meta.camera_make is None

    blank = _save_with_exif(small, tmp_path / "c.jpg", {0x0132: "    :  :     :  :  "}, {})
    os.utime(blank, (1_600_000_000, 1_600_000_000))
    meta = read_photo_meta(blank)
    assert meta.captured_at_source == "file_mtime"
    assert meta.captured_at == datetime.fromtimestamp(1_600_000_000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021:10:22 00:56:41", datetime(2021, 10, 22, 0, 56, 41)),
        ("2021-10-22T00:56:41", datetime(2021, 10, 22, 0, 56, 41)),
        (b"2021:10:22 00:56:41\x00", datetime(2021, 10, 22, 0, 56, 41)),
        ("2021:13:22 00:56:41", None),
        ("0000:00:00 00:00:00", None),
        ("", None),
        (None, None),
        (20211022, None),
    ],
)
def test_parse_exif_datetime(text: object, expected: datetime | None) -> None:
    assert parse_exif_datetime(text) == expected


def test_orientation_follows_megadetector(tmp_path: Path) -> None:
    with Image.open(VICTURE) as source:
        small = source.reduce(8)  # 240x180
    assert small.size == (240, 180)

    # 6 and 8 are the rotations MegaDetector applies: width and height swap.
    for orientation in (6, 8):
        meta = read_photo_meta(
            _save_with_exif(small, tmp_path / f"o{orientation}.jpg", {0x0112: orientation}, {})
        )
        assert (meta.width, meta.height, meta.orientation) == (180, 240, orientation)
    # 3 is a 180 degree turn; 5 (transpose) is mirrored, which MegaDetector ignores.
    for orientation in (3, 5):
        meta = read_photo_meta(
            _save_with_exif(small, tmp_path / f"o{orientation}.jpg", {0x0112: orientation}, {})
        )
        assert (meta.width, meta.height, meta.orientation) == (240, 180, orientation)
    # MegaDetector converts greyscale to RGB before reading EXIF, so never rotates it.
    grey = _save_with_exif(small.convert("L"), tmp_path / "grey6.jpg", {0x0112: 6}, {})
    meta = read_photo_meta(grey)
    assert (meta.width, meta.height, meta.orientation) == (240, 180, 6)


def test_png_is_read(tmp_path: Path) -> None:
    with Image.open(VICTURE) as source:
        source.reduce(8).save(tmp_path / "x.png")
    meta = read_photo_meta(tmp_path / "x.png")
    assert (meta.width, meta.height, meta.captured_at_source) == (240, 180, "file_mtime")


def test_unreadable_photos_raise_photo_read_error(tmp_path: Path) -> None:
    data = VICTURE.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")

    cases = {
        truncated: "truncated",
        text: "not an image",
        empty: "not an image",
        tmp_path / "missing.jpg": "no such file",
        tmp_path: "is a directory",
    }
    for path, reason in cases.items():
        with pytest.raises(PhotoReadError) as info:
            read_photo_meta(path)
        assert str(path) in str(info.value)
        assert reason in info.value.reason, (path, info.value.reason)
        assert info.value.path == path

    # The header of the truncated copy is intact: only decoding finds the damage.
    assert read_photo_meta(truncated, verify=False).width == 1920
