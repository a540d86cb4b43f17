"""Image augmentations for camera-trap crops, driven by an explicit numpy Generator.

Mild on purpose: the crop is already tight on the animal and the identity is in the
flank markings, so the random crop keeps most of the body; colour jitter and random
greyscale mimic dusk and infrared night shots. Horizontal flip is optional and off by
default: the left and right flanks of one animal carry different markings (measured
in docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.7, 1.0)  # area fraction kept by the random crop
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # aspect change relative to the crop's own
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    greyscale_p: float = 0.2
    flip_p: float = 0.0


def augment(img: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    scale = rng.uniform(*cfg.crop_scale)
    log_r = rng.uniform(np.log(cfg.crop_ratio[0]), np.log(cfg.crop_ratio[1]))
    ratio = float(np.exp(log_r))
    cw = round(min(w, w * np.sqrt(scale * ratio)))
    ch = round(min(h, h * np.sqrt(scale / ratio)))
    cw, ch = max(cw, 1), max(ch, 1)
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    # Fixed order, every factor drawn every time, so the RNG stream does not depend on branches.
    b, c, s = (rng.uniform(1 - v, 1 + v) for v in (cfg.brightness, cfg.contrast, cfg.saturation))
    grey, flip = rng.random(), rng.random()
    img = ImageEnhance.Brightness(img).enhance(b)
    img = ImageEnhance.Contrast(img).enhance(c)
    img = ImageEnhance.Color(img).enhance(s)
    if grey < cfg.greyscale_p:
        img = ImageOps.grayscale(img).convert("RGB")
    if flip < cfg.flip_p:
        img = ImageOps.mirror(img)
    return img
