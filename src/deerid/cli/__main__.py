"""`python -m deerid.cli`: the same command line as the `deerid` script."""

from deerid.cli import app

app()
