"""Cut detection boxes out of a photo with one decode per photo.

Trail cameras write 12-20 MP JPEGs while the embedder looks at a few hundred
pixels, so a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling via
`Image.draft`) whenever every box that needs a crop still has at least
`target_size` pixels on its shorter side at that scale. One small deer in the
frame forces full resolution for all of that photo's boxes.

Boxes are in MegaDetector's frame: EXIF-rotated the way MegaDetector rotates
(see `deerid.ingest.photos`). Reported pixel boxes are always full-resolution
coordinates in that frame, whatever scale the pixels were decoded at.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from deerid.ingest.photos import decode, md_transpose, open_photo

MIN_CROP_SIZE = 50
"""Default minimum box side in full-resolution pixels (settings: MIN_CROP_SIZE)."""

PixelBox = tuple[int, int, int, int]
"""`(x0, y0, x1, y1)`, x1/y1 exclusive, in full-resolution pixels."""

_DRAFT_SCALES = (8, 4, 2)

T = TypeVar("T")


@dataclass(frozen=True)
class CropResult:
    box: PixelBox
    """Full-resolution pixels in MegaDetector's frame, clipped to the image."""
    too_small: bool
    """Either side of `box` is below `min_size`; no crop was made."""
    image: Image.Image | None
    """RGB crop, None when too small. Decoded at 1/`scale`, so about box size / scale."""
    scale: int
    """Reduction the photo was decoded at: 1 = full resolution, else 2, 4 or 8."""


def pixel_box(bbox: Sequence[float], width: int, height: int) -> PixelBox:
    """Full-resolution pixel box for a normalised `(x_min, y_min, w, h)` box.

    Each edge is rounded to the nearest pixel edge, as Pillow's `crop` (and so
    MegaDetector's own cropping) does, then clipped to the image; the box's
    size is then within a pixel of the detector's, which is what `min_size` is
    judged on. A box outside the image comes back with zero width or height.
    """
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (x_min, y_min, width, height), got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"bbox has a non-finite value: {bbox!r}")
    x0 = _clamp(round(x * width), width)
    y0 = _clamp(round(y * height), height)
    x1 = max(x0, _clamp(round((x + w) * width), width))
    y1 = max(y0, _clamp(round((y + h) * height), height))
    return (x0, y0, x1, y1)


def choose_scale(boxes: Sequence[PixelBox], target_size: int | None) -> int:
    """Largest DCT reduction that keeps every box's shorter side >= target_size; 1 if none."""
    if target_size is None or not boxes:
        return 1
    shortest = min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes)
    for scale in _DRAFT_SCALES:
        if shortest / scale >= target_size:
            return scale
    return 1


def crop_boxes(
    path: Path,
    bboxes: Sequence[Sequence[float]],
    min_size: int = MIN_CROP_SIZE,
    target_size: int | None = None,
) -> list[CropResult]:
    """Crop every normalised box out of the photo at `path`, in order.

    `target_size` is the shorter side the caller will resize crops to; when
    given, a JPEG is decoded at reduced scale if every crop keeps at least that
    many pixels (None: always full resolution). Boxes below `min_size` pixels
    on either side are reported `too_small` without a crop. When all boxes
    are too small the pixels are not decoded at all.

    Every crop is held at once; `iter_crops` makes them one at a time.

    Raises `PhotoReadError` for a missing, non-image or corrupt photo and
    `ValueError` for a malformed box.
    """
    return list(iter_crops(path, bboxes, min_size, target_size))


def iter_crops(
    path: Path | str,
    bboxes: Sequence[Sequence[float]],
    min_size: int = MIN_CROP_SIZE,
    target_size: int | None = None,
) -> Generator[CropResult]:
    """`crop_boxes` one crop at a time, from one decode of the photo.

    Memory is the decoded photo plus whatever crops the caller keeps, not one
    crop per box: a photo with 2,000 boxes must not hold 2,000 crops. The photo
    is opened, checked and decoded before the first result is yielded, so a
    `PhotoReadError` or a `ValueError` for a malformed box comes from the first
    `next()`; closing the iterator early closes the photo.
    """
    path = Path(path)
    with open_photo(path) as image:
        transpose = md_transpose(image)
        raw_width, raw_height = image.size
        rotated = transpose in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
        width, height = (raw_height, raw_width) if rotated else (raw_width, raw_height)

        boxes = [pixel_box(bbox, width, height) for bbox in bboxes]
        small = [x1 - x0 < min_size or y1 - y0 < min_size for x0, y0, x1, y1 in boxes]
        wanted = [box for box, is_small in zip(boxes, small, strict=True) if not is_small]
        if not wanted:
            for box in boxes:
                yield CropResult(box=box, too_small=True, image=None, scale=1)
            return

        scale = 1
        requested = choose_scale(wanted, target_size)
        if requested > 1:
            drafted = image.draft(image.mode, (raw_width // requested, raw_height // requested))
            if drafted is not None:
                # Pillow may pick a different power of two than asked for tiny
                # images; the scale it reports is the one the pixels have.
                scale = round(raw_width / drafted[1][2])
        decode(image, path)
        pixels = image.transpose(transpose) if transpose is not None else image

        for box, is_small in zip(boxes, small, strict=True):
            if is_small:
                yield CropResult(box=box, too_small=True, image=None, scale=scale)
                continue
            crop = pixels.crop(_scaled(box, scale, pixels.size))
            if crop.mode != "RGB":
                crop = crop.convert("RGB")
            yield CropResult(box=box, too_small=False, image=crop, scale=scale)


def _scaled(box: PixelBox, scale: int, size: tuple[int, int]) -> PixelBox:
    # Rounding outward keeps the reduced crop covering the whole full-res box.
    # With a 180/90/270 rotation and a side not divisible by the scale the
    # reduced grid is offset by under one reduced pixel; that is within the
    # precision of any detector box.
    if scale == 1:
        return box
    x0, y0, x1, y1 = box
    width, height = size
    return (
        min(x0 // scale, width),
        min(y0 // scale, height),
        min(-(-x1 // scale), width),
        min(-(-y1 // scale), height),
    )


def _clamp(value: int, upper: int) -> int:
    return min(max(value, 0), upper)


_ITEM, _END, _ERROR = range(3)


def prefetch(items: Iterable[T], ahead: int) -> Generator[T]:
    """Yield `items` in order, produced by one background thread at most `ahead` items ahead.

    Decoding, cropping and resizing a JPEG release the GIL, so photos are read
    while the caller embeds the previous batch, instead of the two taking turns.
    Memory stays bounded: the thread waits once `ahead` items are ready and
    untaken. An exception raised while producing is re-raised here, in order,
    after the items before it. Closing this generator (or an exception in the
    caller) stops the thread, which closes `items` in its own thread. With
    `ahead < 1` the items are produced in the caller's thread, as a plain loop.
    """
    if ahead < 1:
        yield from items
        return
    ready: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(entry: tuple[int, object]) -> bool:
        # A timed put, so a consumer that went away (stop set) never leaves this thread blocked.
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((_ITEM, item)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it in its thread
            put((_ERROR, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator must be closed by the thread that ran it

    thread = threading.Thread(target=produce, name="deerid-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
