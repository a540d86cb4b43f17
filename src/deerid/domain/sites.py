"""Sites: the scope within which two sightings can be the same animal.

A site is a set of cameras whose animals can meet: a property, a study area.
Matching searches and locks per site and sex, so workers of different sites
never wait on each other (docs/scale.md, "Workers and sites"). Every camera is
in the default site until a person puts it elsewhere; matching across sites
is opt-in (DEERID_MATCH_ACROSS_SITES).
"""

from __future__ import annotations

import re

from deerid.errors import Invalid

DEFAULT_SITE = "default"
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


class SiteError(Invalid):
    """A site name that cannot be used, or a camera that belongs to another site."""


def check_site_name(name: str) -> str:
    """The name, stripped; a clear error for an empty, overlong or control-character name."""
    stripped = name.strip()
    if not _NAME.match(stripped):
        raise SiteError(f"a site name is 1-100 printable characters, not {name!r}")
    return stripped
