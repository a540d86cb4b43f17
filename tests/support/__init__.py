"""Helpers the tests import: data locations, databases, cards of feeder photos, hand-built
worlds and servers. Fixtures and pytest hooks stay in conftest.py."""
