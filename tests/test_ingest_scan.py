from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from deerid.core.files import sha256_file
from deerid.ingest import scan
from deerid.ingest.scan import iter_photos

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FEEDER = DATA / "trailcam" / "feeder"


def test_feeder_folder_yields_its_47_photos_sorted() -> None:
    found = list(iter_photos(FEEDER))

    names = sorted(p.name for p in FEEDER.iterdir())
    assert [rel for _, rel in found] == names
    assert len(found) == 47
    for absolute, rel in found:
        assert absolute.is_absolute()
        assert absolute == Path(os.path.abspath(FEEDER)) / rel


def _touch(root: Path, rel: str, data: bytes = b"x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_walk_filters_sorts_and_skips_hidden(tmp_path: Path) -> None:
    for rel in (
        "b.JPG",
        "a.jpeg",
        "A.PNG",
        "notes.txt",
        "md.json",
        "clip.mp4",
        "noext",
        "cam2/z.jpg",
        "cam1/y.Jpg",
        "cam1/deep/x.jpg",
        ".hidden/h.jpg",
        "cam1/.thumbs/t.jpg",
        "cam1/._y.Jpg",
    ):
        _touch(tmp_path, rel)
    (tmp_path / "folder.jpg").mkdir()  # a folder with a photo's name is walked, not yielded
    _touch(tmp_path, "folder.jpg/inside.jpg")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "link.jpg").symlink_to(tmp_path / "b.JPG")

    rels = [rel for _, rel in iter_photos(tmp_path)]

    assert rels == [
        "A.PNG",
        "a.jpeg",
        "b.JPG",
        "cam1/deep/x.jpg",
        "cam1/y.Jpg",
        "cam2/z.jpg",
        "folder.jpg/inside.jpg",
        "link.jpg",
    ]


def test_bad_roots_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(iter_photos(tmp_path / "missing"))
    _touch(tmp_path, "photo.jpg")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        list(iter_photos(tmp_path / "photo.jpg"))


def test_unlistable_subfolder_is_reported_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("a/1.jpg", "b/2.jpg", "c/3.jpg"):
        _touch(tmp_path, rel)
    real_scandir = os.scandir
    broken = tmp_path / "b"

    def scandir(path: os.PathLike[str]) -> object:
        # chmod cannot lock root out, so the permission failure is simulated.
        if Path(path) == broken:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)

    errors: list[tuple[Path, OSError]] = []
    rels = [rel for _, rel in iter_photos(tmp_path, on_error=lambda p, e: errors.append((p, e)))]
    assert rels == ["a/1.jpg", "c/3.jpg"]
    assert [(p, type(e)) for p, e in errors] == [(broken, PermissionError)]

    with pytest.raises(PermissionError):
        list(iter_photos(tmp_path))


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    photo = FEEDER / "IMG_2263.JPG"
    assert sha256_file(photo) == hashlib.sha256(photo.read_bytes()).hexdigest()

    # Larger than the read chunk and not a multiple of it, so every branch of the loop runs.
    big = tmp_path / "big.bin"
    payload = os.urandom(3 * (1 << 20) + 12345)
    big.write_bytes(payload)
    assert sha256_file(big) == hashlib.sha256(payload).hexdigest()

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()
