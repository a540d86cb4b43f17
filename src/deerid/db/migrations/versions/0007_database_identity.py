"""The database's identity: one random UUID per deerid database.

Why:
- Two deerid databases (deployments) may share one broker. Re-ID tasks carry
  only detection ids, so a worker of database A would run B's tasks against A.
  Each database gets its own queue, named from this id, and every task carries
  the id, so a worker refuses (forwards) a task of another database.
- A random UUID made once here, not the URL: the same database is reached by
  different URLs (socket, host name), and a dump restored elsewhere keeps it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE database_identity ("
        " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
        " database_id uuid NOT NULL DEFAULT gen_random_uuid(),"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("INSERT INTO database_identity DEFAULT VALUES")


def downgrade() -> None:
    op.execute("DROP TABLE database_identity")
