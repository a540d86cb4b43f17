"""Exports people analyse with: a Camtrap DP 1.0 package (camtrap.py) and a flat CSV of
sightings (csv.py). Both stream from server-side cursors into files or a zip, so their
memory does not grow with the number of sightings. Formats and mapping: docs/export.md."""

from __future__ import annotations

from deerid.export.common import ExportError, ExportOptions

__all__ = ["ExportError", "ExportOptions"]
