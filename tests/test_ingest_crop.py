from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deerid.domain.classes import Kind
from deerid.ingest.crop import MIN_CROP_SIZE, choose_scale, crop_boxes, pixel_box
from deerid.ingest.megadetector import load_detections
from deerid.ingest.photos import PhotoReadError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FEEDER = DATA / "trailcam" / "feeder"
FEEDER_JSON = DATA / "trailcam" / "feeder.detections.json"

# The 11 feeder deer boxes under 50 px on a side (all in 640x360 Moultrie thumbnails).
TOO_SMALL_AT_50 = {
    ("IMG_3736.JPG", 1),  # 112x38, the "ears" in front of the lens
    ("IMG_7332.JPG", 0),
    ("IMG_7332.JPG", 1),
    ("IMG_7332.JPG", 2),
    ("IMG_7333.JPG", 2),
    ("IMG_7333.JPG", 4),  # the ~19x15 px distant deer
    ("IMG_7334.JPG", 1),
    ("IMG_7335.JPG", 0),
    ("IMG_7335.JPG", 1),
    ("IMG_7335.JPG", 2),
    ("IMG_7335.JPG", 4),  # 59x49: the borderline one
}


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_feeder_deer_crops_and_too_small_count() -> None:
    batch = load_detections(FEEDER_JSON)
    assert MIN_CROP_SIZE == 50
    seen = 0
    too_small: set[tuple[str, int]] = set()
    for image in batch.images:
        deer = [d for d in image.detections if d.kind is Kind.DEER]
        if not deer:
            continue
        results = crop_boxes(FEEDER / image.file, [d.bbox for d in deer], min_size=50)
        assert len(results) == len(deer)
        with Image.open(FEEDER / image.file) as pil:
            width, height = pil.size
            full = pil.convert("RGB")
        for detection, result in zip(deer, results, strict=True):
            seen += 1
            x0, y0, x1, y1 = result.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert result.scale == 1
            if result.too_small:
                too_small.add((image.file, detection.index))
                assert result.image is None
                assert min(x1 - x0, y1 - y0) < 50
            else:
                assert result.image is not None and result.image.mode == "RGB"
                assert result.image.size == (x1 - x0, y1 - y0)
                assert np.array_equal(_array(result.image), _array(full.crop(result.box)))
    assert seen == 76
    assert too_small == TOO_SMALL_AT_50


def test_box_at_the_image_edge_and_out_of_bounds_clipping() -> None:
    path = FEEDER / "IMG_0988.JPG"  # 1920x1440, deer touching the left edge
    edge, partly_out, right_out, outside = crop_boxes(
        path,
        [
            (0.0, 0.268, 0.28, 0.324),
            (-0.1, 0.9, 0.3, 0.3),
            (0.9, -5e-07, 0.2, 0.5),
            (1.1, 0.2, 0.1, 0.1),
        ],
    )
    assert edge.box == (0, 386, 538, 852)
    assert partly_out.box == (0, 1296, 384, 1440)
    assert partly_out.image is not None and partly_out.image.size == (384, 144)
    assert right_out.box == (1728, 0, 1920, 720)
    assert outside.box[0] == outside.box[2] == 1920
    assert outside.too_small and outside.image is None


def test_pixel_box_rounding_and_bad_boxes() -> None:
    assert pixel_box((0.5, 0.5, 0.25, 0.25), 640, 360) == (320, 180, 480, 270)
    assert pixel_box((0.0, 0.0, 1.0, 1.0), 640, 360) == (0, 0, 640, 360)
    # Nearest pixel edge, like Pillow's crop: 0.3 * 1920 = 576.0000000000001 stays 576.
    assert pixel_box((0.3, 0.1001, 0.2, 0.2), 1920, 1440) == (576, 144, 960, 432)
    assert pixel_box((0.5, 0.5, -0.1, 0.1), 100, 100) == (50, 50, 50, 60)
    with pytest.raises(ValueError, match="x_min, y_min, width, height"):
        pixel_box((0.1, 0.2, 0.3), 100, 100)
    with pytest.raises(ValueError, match="non-finite"):
        pixel_box((0.1, float("nan"), 0.3, 0.3), 100, 100)


def test_choose_scale() -> None:
    big = (0, 0, 1600, 1200)
    assert choose_scale([big], None) == 1
    assert choose_scale([big], 224) == 4  # 1200 / 4 = 300, / 8 = 150
    assert choose_scale([big], 150) == 8
    assert choose_scale([big, (0, 0, 300, 300)], 224) == 1
    assert choose_scale([], 224) == 1


@pytest.mark.parametrize(("target", "scale"), [(224, 2), (160, 4), (90, 8)])
def test_draft_decode_gives_the_same_region_at_reduced_scale(target: int, scale: int) -> None:
    path = FEEDER / "IMG_2336.JPG"  # 1920x1440, one deer of 1164x739 px
    bbox = (0.157, 0.445, 0.606, 0.513)
    (full,) = crop_boxes(path, [bbox], target_size=None)
    (drafted,) = crop_boxes(path, [bbox], target_size=target)

    assert (full.scale, drafted.scale) == (1, scale)
    assert drafted.box == full.box == (301, 641, 1465, 1380)
    assert drafted.image is not None
    width, height = drafted.image.size
    # Edges round outward at the reduced scale: never short of the box, at most 2 reduced px over.
    assert 0 <= width * scale - 1164 < 2 * scale and 0 <= height * scale - 739 < 2 * scale
    assert min(width, height) >= target

    # The drafted crop must line up with the same region of a box-filtered
    # full decode: of all offsets within 2 reduced pixels, (0, 0) fits best.
    with Image.open(path) as pil:
        reduced = pil.convert("RGB").resize((-(-1920 // scale), -(-1440 // scale)), Image.Resampling.BOX)
    x0, y0 = full.box[0] // scale, full.box[1] // scale
    got = _array(drafted.image)
    errors = {
        (dx, dy): np.abs(
            got - _array(reduced.crop((x0 + dx, y0 + dy, x0 + dx + width, y0 + dy + height)))
        ).mean()
        for dx in range(-2, 3)
        for dy in range(-2, 3)
    }
    assert min(errors, key=errors.__getitem__) == (0, 0)
    assert errors[(0, 0)] < 2.0


def test_a_small_box_forces_full_resolution_and_too_small_ones_do_not() -> None:
    path = FEEDER / "IMG_5497.JPG"  # 1920x1086: deer of 480x324 and 224x192 px
    big, small = (0.715, 0.541, 0.25, 0.299), (0.855, 0.615, 0.117, 0.177)
    tiny = (0.1, 0.1, 0.01, 0.01)  # 19x11 px: rejected, so it must not hold the scale down

    assert {r.scale for r in crop_boxes(path, [big, tiny], target_size=150)} == {2}
    both = crop_boxes(path, [big, small, tiny], target_size=150)
    assert [r.scale for r in both] == [1, 1, 1]
    assert [r.too_small for r in both] == [False, False, True]
    assert both[0].image is not None and both[0].image.size == (480, 324)


def test_large_camera_frame_decodes_at_reduced_scale(tmp_path: Path) -> None:
    # A Victure HC300 writes 5200x3900; the shared copy is downscaled, so upscale it back.
    path = tmp_path / "IMG_2336_5200.JPG"
    with Image.open(FEEDER / "IMG_2336.JPG") as pil:
        pil.resize((5200, 3900), Image.Resampling.BILINEAR).save(path, quality=85)
    bbox = (0.157, 0.445, 0.606, 0.513)
    (result,) = crop_boxes(path, [bbox], target_size=224)
    assert result.box == pixel_box(bbox, 5200, 3900) == (816, 1736, 3968, 3736)
    assert result.scale == 8
    assert result.image is not None and result.image.size == (394, 250)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotation_is_applied_like_megadetector(tmp_path: Path, orientation: int) -> None:
    with Image.open(FEEDER / "IMG_2336.JPG") as pil:
        upright = pil.reduce(4).convert("RGB")  # 480x360, as MegaDetector would see it
    # Store the pixels the way a camera held sideways would, tagged so that
    # applying the orientation gives `upright` back. PNG keeps pixels exact.
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.png"
    upright.transpose(undo[orientation]).save(path, exif=exif)

    bbox = (0.157, 0.445, 0.606, 0.513)
    (result,) = crop_boxes(path, [bbox])
    assert result.box == pixel_box(bbox, 480, 360)
    assert result.image is not None
    assert np.array_equal(_array(result.image), _array(upright.crop(result.box)))


def test_unreadable_photo_raises_photo_read_error(tmp_path: Path) -> None:
    data = (FEEDER / "IMG_2336.JPG").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 3])
    bbox = (0.157, 0.445, 0.606, 0.513)
    for target in (None, 224):
        with pytest.raises(PhotoReadError, match="truncated"):
            crop_boxes(truncated, [bbox], target_size=target)
    with pytest.raises(PhotoReadError, match="no such file"):
        crop_boxes(tmp_path / "missing.jpg", [bbox])
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    with pytest.raises(PhotoReadError, match="not an image"):
        crop_boxes(text, [bbox])
