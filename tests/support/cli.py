"""`deerid ARGS` in this test's process, on the test's own runtime context (Typer's CliRunner).

The command line's callback uses a context handed in as `obj` instead of building one from the
environment, so no env vars and no settings cache are involved. Subprocesses stay where several
processes are the point (signals, locks, workers, undecodable argv bytes)."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from typer.testing import CliRunner

from deerid.app import Deerid
from deerid.cli import app
from deerid.core.config import Settings


@dataclass(frozen=True)
class Ran:
    """What a run printed, shaped like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke_once(settings: Settings, *args: str) -> Ran:
    """One `deerid ARGS` run on a context of its own, closed after it, as a separate run would be."""
    with Deerid(settings) as context:
        return invoke(context, *args)


def invoke(deerid: Deerid, *args: str, env: Mapping[str, str] | None = None) -> Ran:
    result = CliRunner().invoke(app, list(args), obj=deerid, env=env)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # A crash prints a traceback in a real run; keep it where tests look for one.
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)
