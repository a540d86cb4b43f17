"""Test databases: each is cloned from one migrated template, which takes milliseconds
instead of re-running the migrations."""

from __future__ import annotations

import uuid

from deerid.db.session import create_database as make_database

TEMPLATE_DB = "deerid_template"


def create_database(pg_root: str) -> str:
    """A new database cloned from the migrated template; returns its URL."""
    return make_database(pg_root, f"t_{uuid.uuid4().hex[:12]}", template=TEMPLATE_DB)
