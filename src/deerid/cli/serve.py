"""`deerid serve` (the dashboard and the API) and `deerid worker` (re-identification off a broker)."""

from __future__ import annotations

from typing import Annotated

import typer

from deerid.cli.root import console, context, fail


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1-65535.")] = 8000,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy",
            help="Reached through a reverse proxy: no request counts as local, every read needs the token.",
        ),
    ] = False,
) -> None:
    """Serve the dashboard and the JSON API (docs at /docs)."""
    import uvicorn

    from deerid.api.deps import ensure_api_token
    from deerid.api.main import create_app
    from deerid.app import Deerid

    app = context(ctx)
    if behind_proxy and not app.settings.behind_proxy:
        # Settings are frozen for the life of a context: the proxy flag needs one of its own.
        app = Deerid(app.settings.model_copy(update={"behind_proxy": True}))
        ctx.call_on_close(app.close)
    settings = app.settings
    # Before create_app, which would make the token silently: a new token is shown once.
    token, generated = ensure_api_token(settings)
    web = create_app(context=app)
    if generated:
        how = f"Authorization: Bearer {token}  (new token, kept in {settings.paths.api_token})"
    elif settings.api_token:
        how = "Authorization: Bearer $DEERID_API_TOKEN"
    else:
        how = f"Authorization: Bearer <the token in {settings.paths.api_token}>"
    console.print(
        f"deerid dashboard on http://{host}:{port}/  (API docs: /docs)\nchanges need: {how}"
        + ("\nbehind a proxy: every read needs the token too" if settings.behind_proxy else ""),
        soft_wrap=True,
        markup=False,
    )
    uvicorn.run(web, host=host, port=port, log_level="warning")


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run a Celery worker for re-ID tasks (needs DEERID_BROKER_URL)."""
    from deerid.dispatch import queue_for
    from deerid.tasks.recovery import requeue_pending

    app = context(ctx)
    if not app.settings.broker_url:
        fail("set DEERID_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run a worker")
    # The main process starts (and so owns) the embedded database: the pool children, which
    # exit through os._exit, must never hold the handle that stops it (F10).
    queue = queue_for(app.database_id)
    # Tasks the previous release left on the shared `celery` queue are never consumed here:
    # this database's pending boxes are queued again instead (deerid.tasks.recovery).
    requeued = requeue_pending(app).describe()
    app.release_connections()  # no pooled connection may cross the fork into the pool children
    console.print(f"worker for the tasks of this database (queue {queue})", soft_wrap=True, markup=False)
    if requeued:
        console.print(requeued, soft_wrap=True, markup=False)
    from deerid.tasks.celery_app import app as celery_app
    from deerid.tasks.celery_app import configure

    configure(app.settings)
    celery_app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--pool=prefork",
            f"--queues={queue}",
        ]
    )
