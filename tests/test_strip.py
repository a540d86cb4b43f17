"""Info strip OCR (deerid.ingest.strip) on the 47 real feeder photos, against the hand-read ground truth
in feeder.detections.json (`strip_datetime`, `strip_camera_name`, `strip_temperature_f`), and the
parser's rules on text written by hand.

The real `tesseract` program is used: scripts/setup.sh installs it, so these fail where it is missing."""

from __future__ import annotations

import json
import math
import statistics
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deerid.ingest.strip import (
    StripReading,
    find_band,
    parse_strip_text,
    read_strip,
    settle_names,
    tesseract_path,
)
from support.paths import FEEDER, FEEDER_JSON

GROUND_TRUTH = {im["file"]: im for im in json.loads(FEEDER_JSON.read_text())["images"]}
NOW = datetime(2026, 1, 1)  # the feeder photos are 2020-2024; a fixed "now" keeps the future check stable
MOULTRIE = sorted(f for f, im in GROUND_TRUTH.items() if im["camera"] == "MOULTRIE EDGE")


@pytest.fixture(scope="module")
def readings() -> dict[str, StripReading]:
    """Every feeder photo's strip, read once for the module (~20 s on 2 cores)."""
    assert tesseract_path() is not None, (
        "tesseract is missing: run scripts/setup.sh (apt-get install tesseract-ocr)"
    )
    return {file: read_strip(FEEDER / file, now=NOW) for file in sorted(GROUND_TRUTH)}


def minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def test_strip_time_matches_ground_truth_to_the_minute(readings: dict[str, StripReading]) -> None:
    """All 47 photos are read; the strip time must equal the hand-read `strip_datetime` to the minute on
    at least 90 % of them (the issue's target)."""
    right = [
        f
        for f, r in readings.items()
        if r.captured_at is not None
        and minute(r.captured_at) == minute(datetime.fromisoformat(GROUND_TRUTH[f]["strip_datetime"]))
    ]
    wrong = {f: (r.status, r.captured_at, r.text) for f, r in readings.items() if f not in right}
    assert len(right) >= math.ceil(0.9 * len(GROUND_TRUTH)), wrong


def test_img_0988_gets_its_strip_time_to_the_second(readings: dict[str, StripReading]) -> None:
    """IMG_0988 has no EXIF time and no band: white Simmons text straight over grass. Its strip must give
    2020-10-18 11:08:54 exactly, with seconds, found as an overlay."""
    reading = readings["IMG_0988.JPG"]
    assert reading.status == "read", reading
    assert reading.captured_at == datetime(2020, 10, 18, 11, 8, 54)
    assert reading.has_seconds and reading.place == "overlay"
    assert reading.camera_name is not None and reading.camera_name.startswith("SIMMONS")


def test_seconds_are_kept_where_the_strip_shows_them(readings: dict[str, StripReading]) -> None:
    """Victure strips print seconds (12:56:42AM): those read to the minute must also be right to the second;
    Moultrie strips print minutes only and say so (has_seconds False)."""
    for file, reading in readings.items():
        truth = datetime.fromisoformat(GROUND_TRUTH[file]["strip_datetime"])
        if GROUND_TRUTH[file]["camera"] == "VICTURE HC300" and reading.captured_at is not None:
            assert reading.has_seconds and reading.captured_at == truth, file
        if file in MOULTRIE and reading.captured_at is not None:
            assert not reading.has_seconds, file


def test_camera_names_on_the_moultrie_photos(readings: dict[str, StripReading]) -> None:
    """The user-set names EDGE / Olpe / GG on the 39 Moultrie photos, after `settle_names` (what ingest
    stores): at least 90 % right. The raw per-photo reading is checked too, at the lower bar it reaches
    alone: 640x360 thumbnails print "Olpe" with a 1-px "l" that touches the "p"."""
    files = sorted(readings)
    settled = dict(
        zip(
            files,
            settle_names(
                [
                    (GROUND_TRUTH[f]["camera"] or "", readings[f].camera_name, readings[f].text_height_px)
                    for f in files
                ]
            ),
            strict=True,
        )
    )
    right = [f for f in MOULTRIE if settled[f] == GROUND_TRUTH[f]["strip_camera_name"]]
    wrong = {f: (readings[f].camera_name, settled[f]) for f in MOULTRIE if f not in right}
    assert len(right) >= math.ceil(0.9 * len(MOULTRIE)), wrong
    raw = [f for f in MOULTRIE if readings[f].camera_name == GROUND_TRUTH[f]["strip_camera_name"]]
    assert len(raw) >= 0.75 * len(MOULTRIE)
    # Victure strips carry no name: none is made up.
    assert all(
        readings[f].camera_name is None for f, im in GROUND_TRUTH.items() if im["camera"] == "VICTURE HC300"
    )


def test_temperatures(readings: dict[str, StripReading]) -> None:
    """°F as printed (the moon icon left of the number must not become a digit) on at least 90 % of the
    46 photos that print one; IMG_0988 prints none and gets none."""
    printed = [f for f, im in GROUND_TRUTH.items() if im["strip_temperature_f"] is not None]
    right = [f for f in printed if readings[f].temperature_f == GROUND_TRUTH[f]["strip_temperature_f"]]
    assert len(right) >= math.ceil(0.9 * len(printed)), {
        f: readings[f].temperature_f for f in printed if f not in right
    }
    assert readings["IMG_0988.JPG"].temperature_f is None


def test_ocr_time_per_photo_is_measured(readings: dict[str, StripReading]) -> None:
    """Every reading carries its own time; the median photo is read in well under 2 s of wall time (0.2 s
    of CPU, 0.4 s on two busy cores: one or two Tesseract calls on the band; the no-band Simmons photo
    takes ~4 s of CPU, 17 calls). benchmarks/strip.py has the table."""
    seconds = [r.seconds for r in readings.values()]
    assert all(s > 0 for s in seconds)
    assert statistics.median(seconds) < 2.0


def test_band_found_at_the_documented_rows() -> None:
    """`find_band` puts the top of the band where ANNOTATION_NOTES.md measured it: Moultrie y=0.9333 (older
    firmware) / 0.9278 (2.0.14), Victure y=0.9585; the Simmons photo has no band."""
    expected = {
        "IMG_3736.JPG": 0.9333,
        "IMG_7312.JPG": 0.9278,
        "IMG_2257.JPG": 0.9585,
        "IMG_3879.JPG": 0.9333,
    }
    for file, top in expected.items():
        luma = np.asarray(Image.open(FEEDER / file).convert("L"))
        rows = find_band(luma, "bottom")
        assert rows is not None and abs(rows[0] / luma.shape[0] - top) < 0.004, (file, rows)
    luma = np.asarray(Image.open(FEEDER / "IMG_0988.JPG").convert("L"))
    assert find_band(luma, "bottom") is None and find_band(luma, "top") is None


def test_unreadable_strip_is_a_status_not_an_error(tmp_path: Path) -> None:
    """A feeder photo with its bottom 10 % (the strip) cut off, a uniform grey frame and a file that is not
    an image: each gives a status with a reason and no time, never an exception."""
    cropped = tmp_path / "cropped.jpg"
    with Image.open(FEEDER / "IMG_3879.JPG") as image:
        image.crop((0, 0, image.width, int(image.height * 0.9))).save(cropped)
    grey = tmp_path / "grey.jpg"
    Image.new("RGB", (640, 360), (90, 90, 90)).save(grey)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    for path in (cropped, grey):
        reading = read_strip(path, now=NOW)
        assert reading.captured_at is None and reading.status in ("no_strip", "no_time"), reading
        assert reading.problem
    reading = read_strip(junk, now=NOW)
    assert reading.status == "error" and reading.captured_at is None and reading.problem


# --- the parser, on text written by hand ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "seconds"),
    [
        ("MOULTRIE MOBILE EDGE 10/07/22 08:21PM 44°F", datetime(2022, 10, 7, 20, 21), False),
        ("42°F 12:56:42AM 2021/10/22", datetime(2021, 10, 22, 0, 56, 42), True),  # 12 AM is 00 h
        ("53°F 12:05:00PM 2021/10/22", datetime(2021, 10, 22, 12, 5), True),  # 12 PM is noon
        ("SIMMONS CAMERA 01 2020/10/18 11:08:54", datetime(2020, 10, 18, 11, 8, 54), True),  # 24 h
        ("MouiTRIEMOBILE EDGE 12/22/22 0527PM -4 °F", datetime(2022, 12, 22, 17, 27), False),  # lost colon
        (
            "moutTRiEMOBILE GG 11/27/242:18PM 41°F",
            datetime(2024, 11, 27, 14, 18),
            False,
        ),  # year and hour fused
        ("CAM2 2023-09-28 13:37 109°F", datetime(2023, 9, 28, 13, 37), False),
        ("SIMMONS CAMERA 01 2020 10T8 11:08:54", datetime(2020, 10, 18, 11, 8, 54), True),  # "/1" read as T
    ],
)
def test_parser_reads_the_formats(text: str, expected: datetime, seconds: bool) -> None:
    """Each layout's date and time formats: MM/DD/YY with 12 h, YYYY/MM/DD with 12 h or 24 h, OCR slips
    the parser tolerates (a lost colon, a fused year, a slash read as T)."""
    parsed = parse_strip_text(text, now=NOW)
    assert parsed.captured_at == expected and parsed.has_seconds is seconds and parsed.problem is None


@pytest.mark.parametrize(
    "text",
    [
        "MOULTRIE MOBILE EDGE 13/07/22 08:21PM 44°F",  # month 13
        "SIMMONS CAMERA 01 2020/13/18 11:08:54",  # month 13, year first
        "CAM 2021/02/30 10:00:00",  # 30 February
        "CAM 02/29/23 10:00AM",  # 2023 is no leap year
        "CAM 10/07/22 13:21PM",  # 13 PM
        "CAM 10/07/22 24:10",  # hour 24
        "CAM 10/07/22 08:61PM",  # minute 61
        "CAM 10/07/2031 08:21PM",  # after NOW
    ],
)
def test_parser_rejects_impossible_dates_and_times(text: str) -> None:
    """A date or time that cannot exist (or lies in the future) gives no time and a `problem` naming it;
    it is never repaired into another date (13/07 is not turned into 7 July)."""
    parsed = parse_strip_text(text, now=NOW)
    assert parsed.captured_at is None
    assert parsed.problem is not None and ("cannot exist" in parsed.problem or "future" in parsed.problem)


def test_parser_day_first_only_when_asked() -> None:
    """22.12.2022 is impossible month-first (rejected), and 22 December with `day_first`; 05/06 reads as
    6 May month-first and 5 June day-first."""
    assert parse_strip_text("CAM 22.12.2022 17:27 -20°C", now=NOW).captured_at is None
    parsed = parse_strip_text("CAM 22.12.2022 17:27 -20°C", now=NOW, day_first=True)
    assert parsed.captured_at == datetime(2022, 12, 22, 17, 27)
    assert parsed.temperature_f == -4  # -20 °C
    assert parse_strip_text("CAM 05/06/2022 10:00", now=NOW).day == date(2022, 5, 6)
    assert parse_strip_text("CAM 05/06/2022 10:00", now=NOW, day_first=True).day == date(2022, 6, 5)


def test_parser_names_and_temperatures() -> None:
    """The camera name is the text before the date minus the Moultrie logo (however it is misread); a
    Simmons logo stays with its camera number; a strip that starts with the temperature has no name; a
    moon icon read as a leading 9 does not make 948 °F."""
    assert parse_strip_text("mourraiceMOBILE GG 11/28/24 8:07PM 22°F", now=NOW).camera_name == "GG"
    assert parse_strip_text("MOBILE Olpe 08/12/23 08:10PM 86°F", now=NOW).camera_name == "Olpe"
    simmons = parse_strip_text("PS SIMMONS CAMERA 01 2020/10/18 11:08:54", now=NOW)
    assert simmons.camera_name == "SIMMONS CAMERA 01" and simmons.temperature_f is None
    victure = parse_strip_text("42°F O 07:18:38PM 2021/10/29", now=NOW)
    assert victure.camera_name is None and victure.temperature_f == 42
    assert parse_strip_text("EDGE 10/22/23 08:44AM 948°F", now=NOW).temperature_f == 48
    assert parse_strip_text("Olpe 09/28/23 0137PM 109 °F", now=NOW).temperature_f == 109
    assert parse_strip_text("", now=NOW) == parse_strip_text("   ", now=NOW)
    assert parse_strip_text("", now=NOW).captured_at is None


def test_settle_names_merges_misreads_but_not_numbered_cameras() -> None:
    """A thumbnail's "Obe" becomes the "Olpe" read off taller strips of the same EXIF camera; "CAM1" and
    "CAM2" stay two cameras however alike; names of another EXIF camera are never used."""
    settled = settle_names(
        [
            ("MOULTRIE EDGE", "Olpe", 72),
            ("MOULTRIE EDGE", "Olpe", 72),
            ("MOULTRIE EDGE", "Obe", 24),
            ("MOULTRIE EDGE", "Ole", 72),
            ("MOULTRIE EDGE", "CAM1", 72),
            ("MOULTRIE EDGE", "CAM2", 24),
            ("OTHER", "Obe", 24),
            ("MOULTRIE EDGE", None, 24),
        ]
    )
    assert settled == ["Olpe", "Olpe", "Olpe", "Olpe", "CAM1", "CAM2", "Obe", None]


def test_times_are_timedelta_and_dates_plain() -> None:
    """The parsed fields keep date and time apart (readings vote on each): `day` is a date, `clock` a
    timedelta since midnight, also when the other half is missing."""
    parsed = parse_strip_text("EDGE 99/99/99 08:21PM", now=NOW)
    assert parsed.day is None and parsed.clock == timedelta(hours=20, minutes=21)
