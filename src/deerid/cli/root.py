"""The Typer app and what every command shares: the runtime context, the consoles, one-line
errors and progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperGroup

from deerid.errors import DeeridError

if TYPE_CHECKING:
    # The Context TyperGroup.invoke declares: typer vendors its own click.
    from typer._click import Context as ClickContext

    from deerid.app import Deerid

# Piped output (logs, `| less`) would otherwise be squeezed to 80 columns and truncate dates.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def printable(text: object) -> str:
    """Text that any console can write: lone surrogates (a JSON \\udcff, a non-UTF-8 name) escaped."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str, code: int = 2) -> NoReturn:
    # The message may quote user text (paths, names): never read as markup (F7).
    err.print(f"[bold red]error:[/] {escape(printable(message))}", soft_wrap=True)
    raise typer.Exit(code)


class _Edge(TyperGroup):
    """The one place where an error the user can fix becomes one line instead of a traceback;
    anything that is not a DeeridError is a bug, and its traceback is what a report needs."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except DeeridError as exc:
            fail(str(exc))


app = typer.Typer(
    cls=_Edge,
    help="Tell individual deer apart in trail-camera photos.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def context(ctx: typer.Context) -> Deerid:
    """The process's runtime context: the one a caller (a test) handed in as `obj`, or one built
    from the environment on first use and closed when the command ends. Built on use, not in the
    callback, so that `deerid ingest --help` works whatever the environment holds."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = _open_context()
        root.call_on_close(root.obj.close)
    return cast("Deerid", root.obj)


def _open_context() -> Deerid:
    from pydantic import ValidationError

    # Imported here: `deerid --help` should not pay for the database and model layers.
    from deerid.app import Deerid
    from deerid.core.config import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")
    return Deerid(settings)


def _terminated(signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, kill) ends the process like Ctrl-C does: through the exit
    handlers, so the embedded PostgreSQL is stopped when this was its last user. By default
    SIGTERM kills Python without running them, leaving the server behind. (uvicorn and Celery
    install their own handlers while they run and hand the signal back to this one.)"""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _terminated)


def progress_factory(progress: Progress) -> Callable[[str, int], Callable[[int], None]]:
    def start(label: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    return start


@contextmanager
def bar(disable: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description:>15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=False,
    )
    with progress:
        yield progress


def fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"
