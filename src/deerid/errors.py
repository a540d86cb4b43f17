"""The errors a user can act on, one hierarchy for the whole project.

Every layer raises these; each edge translates them once: the API by one
handler that answers `status` with the message, the CLI by one `except
DeeridError` that prints it. Anything else is a bug and stays a traceback.
The message always says what to do next, because it is all a person sees.

The second bases keep older `except ValueError` / `except LookupError` /
`except RuntimeError` callers (and third-party code) working.
"""

from __future__ import annotations


class DeeridError(Exception):
    """Something went wrong that the user can fix; the message says how."""

    status: int = 400


class NotFound(DeeridError, LookupError):
    """A deer, photo, camera, model or file that does not exist."""

    status = 404


class Conflict(DeeridError):
    """The request clashes with the current state (a stale review, an overlapping deployment)."""

    status = 409


class Invalid(DeeridError, ValueError):
    """Input that cannot be used as given: a bad file, a bad argument, an unknown class."""

    status = 422


class Unavailable(DeeridError, RuntimeError):
    """Something the run needs is missing or down: the database, the broker, weights, Tesseract."""

    status = 503
