"""deerid: tell individual deer apart in trail-camera photos."""

__version__ = "0.1.0"
