from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from deerid.domain.classes import DeerClass, Kind
from deerid.ingest.megadetector import DetectionsFileError, MDBatch, Problem, load_detections

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FEEDER_JSON = DATA / "trailcam" / "feeder.detections.json"
MDV5A_JSON = DATA / "megadetector" / "mdv5a.detections.json"


def _write(tmp_path: Path, data: Any, name: str = "md.json") -> Path:
    path = tmp_path / name
    # allow_nan: real writers (numpy-backed ones) emit NaN, and the parser must cope.
    path.write_text(json.dumps(data, allow_nan=True))
    return path


def _batch(images: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": {"0": "doe", "1": "Mature", "2": "turkey", "3": "deer"},
        "images": images,
    }
    data.update(top)
    return data


def _det(category: str = "1", bbox: Any = (0.1, 0.2, 0.3, 0.4), **more: Any) -> dict[str, Any]:
    return {
        "category": category,
        "conf": 0.9,
        "bbox": list(bbox) if isinstance(bbox, tuple) else bbox,
        **more,
    }


# --- real files -------------------------------------------------------------


def test_feeder_ground_truth_loads_with_the_documented_counts() -> None:
    batch = load_detections(FEEDER_JSON)

    assert batch.format_version == "1.4"
    assert batch.detector == "human annotation"
    assert batch.problems == []
    assert len(batch.images) == 47
    detections = [d for image in batch.images for d in image.detections]
    assert len(detections) == 107
    kinds = Counter(d.kind for d in detections)
    assert kinds == {Kind.DEER: 76, Kind.ANIMAL: 29, Kind.PERSON: 2}
    classes = Counter(d.deer_class for d in detections if d.kind is Kind.DEER)
    assert classes == {
        DeerClass.DOE: 20,
        DeerClass.FAWN: 2,
        DeerClass.YOUNG: 1,
        DeerClass.MID: 9,
        DeerClass.MATURE: 12,
        DeerClass.UNKNOWN: 32,
    }
    # Non-deer animals carry class "other": not deer, label kept as written.
    others = [d for d in detections if d.kind is Kind.ANIMAL]
    assert {d.class_label for d in others} == {"other"}
    assert all(d.deer_class is None for d in others)
    assert Counter(d.extra.get("label") for d in others)["wild_turkey"] == 23


def test_feeder_extra_keys_are_kept_per_detection_and_image() -> None:
    batch = load_detections(FEEDER_JSON)
    detections = [d for image in batch.images for d in image.detections]

    assert Counter(d.extra.get("individual") for d in detections if "individual" in d.extra) == {
        "buck-A": 5,
        "buck-B": 2,
    }
    assert sum(1 for d in detections if d.extra.get("difficult") is True) == 4
    by_file = {image.file: image for image in batch.images}
    assert by_file["IMG_2257.JPG"].extra["camera"] == "VICTURE HC300"
    buck = by_file["IMG_2257.JPG"].detections[0]
    assert (buck.deer_class, buck.class_label, buck.class_conf) == (DeerClass.MATURE, "mature", 1.0)
    assert buck.bbox == (0.0, 0.28, 0.3, 0.665)


def test_real_megadetector_v5a_output_without_classifier() -> None:
    batch = load_detections(MDV5A_JSON)

    assert batch.format_version == "1.1"
    assert batch.detector == "megadetector_v5_camonly_mosaic_xlarge_dist_5a_last"
    assert batch.problems == []
    assert len(batch.images) == 31
    detections = [d for image in batch.images for d in image.detections]
    # Plain detector output: every animal box is a deer of unknown class.
    animals = [d for d in detections if d.category == "animal"]
    assert animals and all(d.kind is Kind.DEER and d.deer_class is DeerClass.UNKNOWN for d in animals)
    assert all(d.class_label is None and d.class_conf is None for d in detections)
    assert all("max_detection_conf" in image.extra for image in batch.images)
    # The detector wrote x_min = -5e-07 on the WCS frame: clipped, not reported.
    wcs = next(image for image in batch.images if image.file == "wcs_camera_traps_animals_0090_1439.jpg")
    edge = wcs.detections[-1]
    assert edge.bbox[0] == 0.0
    assert edge.bbox[2] == pytest.approx(0.3942 - 5e-07)
    for d in detections:
        x, y, w, h = d.bbox
        assert x >= 0.0 and y >= 0.0 and w > 0 and h > 0
        assert x + w <= 1.0 + 1e-12 and y + h <= 1.0 + 1e-12


# --- classification rules -----------------------------------------------------


def test_animal_class_from_top_classification(tmp_path: Path) -> None:
    detections = [
        _det(),  # no classification: plain detector output
        _det(classifications=[["1", 0.8], ["0", 0.1]]),  # "Mature": case as written
        _det(classifications=[["2", 0.7], ["0", 0.2]]),  # turkey: not a deer
        _det(classifications=[["0", 0.3], ["1", 0.6]]),  # unsorted: highest wins
        _det(classifications=[["3", 0.9]]),  # alias "deer"
        _det(classifications=[]),  # empty list = unclassified
        _det(category="2", classifications=[["0", 0.9]]),  # a person stays a person
        _det(category="3"),
    ]
    batch = load_detections(_write(tmp_path, _batch([{"file": "a.jpg", "detections": detections}])))

    got = [(d.kind, d.deer_class, d.class_label, d.class_conf) for d in batch.images[0].detections]
    assert got == [
        (Kind.DEER, DeerClass.UNKNOWN, None, None),
        (Kind.DEER, DeerClass.MATURE, "Mature", 0.8),
        (Kind.ANIMAL, None, "turkey", 0.7),
        (Kind.DEER, DeerClass.MATURE, "Mature", 0.6),
        (Kind.DEER, DeerClass.UNKNOWN, "deer", 0.9),
        (Kind.DEER, DeerClass.UNKNOWN, None, None),
        (Kind.PERSON, None, "doe", 0.9),
        (Kind.VEHICLE, None, None, None),
    ]
    assert batch.problems == []


# --- bad detections are dropped one by one --------------------------------------


def test_bad_detections_are_dropped_with_a_reason_and_the_rest_loads(tmp_path: Path) -> None:
    detections = [
        _det(bbox=(0.1, 0.1, 0.2, 0.2), individual="buck-A"),  # 0 good, extra key
        _det(category="7"),  # 1 unknown category id
        _det(classifications=[["9", 0.9]]),  # 2 classification id not in categories
        _det(bbox=[0.1, 0.2, 0.3]),  # 3 wrong length
        _det(bbox=[0.1, "a", 0.3, 0.4]),  # 4 non-numeric
        _det(bbox=[0.1, math.nan, 0.3, 0.4]),  # 5 NaN
        _det(bbox=[0.5, 0.5, -0.1, 0.2]),  # 6 negative size
        _det(bbox=[-0.1, 0.9, 0.3, 0.3]),  # 7 partly outside: clipped, kept
        _det(bbox=[1.2, 0.1, 0.1, 0.1]),  # 8 entirely outside
        {"category": "1", "conf": "high", "bbox": [0.1, 0.1, 0.1, 0.1]},  # 9 bad conf
        "not a detection",  # 10
        _det(bbox=(0.6, 0.6, 0.2, 0.2)),  # 11 good
    ]
    other = {"file": "b.jpg", "detections": [_det()]}
    batch = load_detections(_write(tmp_path, _batch([{"file": "a.jpg", "detections": detections}, other])))

    image = batch.images[0]
    assert [d.index for d in image.detections] == [0, 7, 11]
    assert image.detections[0].extra == {"individual": "buck-A"}
    assert image.detections[1].bbox == pytest.approx((0.0, 0.9, 0.2, 0.1))
    assert len(batch.images[1].detections) == 1

    reasons = {int(problem.split()[1]): problem for problem in image.problems}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert "unknown category id '7' (detection_categories has 1, 2, 3)" in reasons[1]
    assert "classification id '9'" in reasons[2]
    assert "4 numbers" in reasons[3]
    assert "non-numeric" in reasons[4]
    assert "non-finite" in reasons[5]
    assert "negative" in reasons[6]
    assert "confidence 'high'" in reasons[9]
    assert "not an object" in reasons[10]
    assert reasons[8] == "detection 8 skipped: bbox lies entirely outside the image: [1.2, 0.1, 0.1, 0.1]"
    # The batch carries the same problems, tagged with their file.
    assert batch.problems == [Problem("a.jpg", reason) for reason in image.problems]


def test_failures_paths_and_duplicates(tmp_path: Path) -> None:
    images = [
        {"file": "cam1\\IMG_0001.JPG", "detections": [_det()], "max_detection_conf": 0.9},
        {"file": "./cam1/IMG_0002.JPG", "detections": None, "failure": "Failure image access"},
        {"file": "cam1/IMG_0001.JPG", "detections": []},  # same file, other spelling
        {"file": "cam2/IMG_0003.JPG"},  # neither detections nor failure
        {"detections": []},  # no file at all
        {"file": "cam2/IMG_0004.JPG", "detections": []},
    ]
    batch = load_detections(_write(tmp_path, _batch(images)))

    assert [image.file for image in batch.images] == [
        "cam1/IMG_0001.JPG",
        "cam1/IMG_0002.JPG",
        "cam2/IMG_0003.JPG",
        "cam2/IMG_0004.JPG",
    ]
    first, failed, never, empty = batch.images
    assert len(first.detections) == 1 and first.extra == {"max_detection_conf": 0.9}
    assert failed.failure == "Failure image access" and failed.detections == [] and failed.problems == []
    assert never.detections == [] and "no 'detections'" in never.problems[0]
    assert empty.detections == [] and empty.failure is None and empty.problems == []
    assert [p.file for p in batch.problems] == ["cam1/IMG_0001.JPG", "cam2/IMG_0003.JPG", "images[4]"]
    assert "duplicate entry images[2] ignored; kept images[0]" in batch.problems[0].reason
    assert "no usable 'file'" in batch.problems[2].reason


def test_tolerated_header_variants(tmp_path: Path) -> None:
    # Version 1.0 style: no info block, max_detection_conf, no classification_categories.
    old = {
        "detection_categories": {"1": "animal", "2": "person"},
        "images": [{"file": "x.jpg", "max_detection_conf": 0.8, "detections": [_det()]}],
    }
    batch = load_detections(_write(tmp_path, old))
    assert isinstance(batch, MDBatch)
    assert batch.format_version == "1.0" and batch.detector is None
    assert batch.problems == [Problem("", "no info.format_version; read as 1.0")]
    assert batch.images[0].detections[0].kind is Kind.DEER

    # A BOM from a Windows editor, extra top-level keys, a numeric version.
    data = _batch([{"file": "y.jpg", "detections": []}], summary="x")
    data["info"]["format_version"] = 1.3
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())
    batch = load_detections(path)
    assert batch.format_version == "1.3" and batch.problems == []


# --- whole-file errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON (line 1, column 2"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (json.dumps([{"file": "a.jpg", "detections": []}]).encode(), "top level is a JSON list"),
        (
            json.dumps(
                {"images": [{"file_name": "a.jpg", "id": 1}], "annotations": [], "categories": []}
            ).encode(),
            "this looks like a COCO file",
        ),
        (json.dumps({"info": {"format_version": "1.4"}, "images": "x"}).encode(), "'images' is a str"),
        (
            json.dumps({"info": {"format_version": "1.4"}, "images": []}).encode(),
            "no 'detection_categories'",
        ),
        (
            json.dumps(
                {"info": {"format_version": "2.0"}, "detection_categories": {}, "images": []}
            ).encode(),
            "unsupported MegaDetector format_version '2.0'",
        ),
        (json.dumps({"no": "images"}).encode(), "no 'images' key"),
    ],
)
def test_unusable_files_raise_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DetectionsFileError) as info:
        load_detections(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_raises_detections_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DetectionsFileError, match=r"cannot read detections file .*nope\.json"):
        load_detections(missing)
    with pytest.raises(DetectionsFileError, match="cannot read detections file"):
        load_detections(tmp_path)
    # It is a ValueError, so callers catching bad input generally still catch it.
    assert issubclass(DetectionsFileError, ValueError)
