"""`python -m deerid`: the same command line as the `deerid` script."""

from deerid.cli import app

app(prog_name="deerid")
