"""Frozen-trunk outputs for a few views of every image, computed once and reused.

Views per image: 0 = the clean inference view, 1 = its mirror (for test-time flip and
flip experiments), 2.. = augmented views. The augmentation of an image is seeded by
(seed, the image's sha256), so a view does not depend on which other images are in
the set: the same cache serves every cross-validation fold and a rerun after a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from deerid.core.files import atomic_path
from deerid.embed.preprocess import to_batch
from deerid.training.augment import AugmentConfig, augment

CLEAN, MIRROR = 0, 1


def cache_key(backbone: str, input_size: int, split: int, aug: AugmentConfig, n_aug: int, seed: int) -> str:
    payload = json.dumps(
        {
            "backbone": backbone,
            "input_size": input_size,
            "split": split,
            "aug": asdict(aug),
            "n_aug": n_aug,
            "seed": seed,
            "v": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def image_views(path: Path, sha256: str, aug: AugmentConfig, n_aug: int, seed: int) -> list[Image.Image]:
    img: Image.Image  # wider than Image.open's ImageFile: rebound to the converted copy
    with Image.open(path) as img:
        img = img.convert("RGB")
    rng = np.random.default_rng([seed, int(sha256[:16], 16)])
    return [img, ImageOps.mirror(img)] + [augment(img, aug, rng) for _ in range(n_aug)]


def build_cache(
    paths: list[Path],
    sha256s: list[str],
    trunk: torch.nn.Module,
    *,
    input_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    aug: AugmentConfig,
    n_aug: int,
    seed: int,
    key: str,
    cache_dir: Path | None,
    device: torch.device,
    batch_images: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """(n_images, 2 + n_aug, C, h, w) float16 trunk outputs, in `paths` order."""
    out: list[torch.Tensor | None] = [None] * len(paths)
    todo: list[int] = []
    for i, sha in enumerate(sha256s):
        f = cache_dir / key / f"{sha}.pt" if cache_dir else None
        if f is not None and f.is_file():
            try:
                out[i] = torch.load(f, map_location="cpu", weights_only=True)
                continue
            except Exception:
                f.unlink(missing_ok=True)
        todo.append(i)
    if cache_dir:
        (cache_dir / key).mkdir(parents=True, exist_ok=True)
    done = len(paths) - len(todo)
    for start in range(0, len(todo), batch_images):
        chunk = todo[start : start + batch_images]
        views: list[Image.Image] = []
        for i in chunk:
            views += image_views(paths[i], sha256s[i], aug, n_aug, seed)
        with torch.inference_mode():
            x = to_batch(views, input_size, mean, std).to(device)
            feats = trunk(x).to(torch.float16).cpu()
        feats = feats.view(len(chunk), 2 + n_aug, *feats.shape[1:])
        for j, i in enumerate(chunk):
            t = feats[j].clone()
            out[i] = t
            if cache_dir:
                with atomic_path(cache_dir / key / f"{sha256s[i]}.pt") as tmp:
                    torch.save(t, tmp)
        done += len(chunk)
        if progress:
            progress(done, len(paths))
    return torch.stack(out)  # type: ignore[arg-type]
