"""Detector classes, deer sexes and the mapping between them.

This is the one place that knows which detector labels are deer and which sex
partition each deer class is matched in; everything else asks here.
"""

from __future__ import annotations

from enum import StrEnum

from deerid.errors import Invalid


class DeerClass(StrEnum):
    """Class of a deer box, as the classifier (or a person) labelled it."""

    DOE = "doe"
    FAWN = "fawn"
    YOUNG = "young"
    MID = "mid"
    MATURE = "mature"
    UNKNOWN = "unknown"


class Sex(StrEnum):
    """Partition a deer is matched in. Fawns are their own partition: a fawn's
    sex is rarely visible and a fawn grows out of its look within a season."""

    DOE = "doe"
    FAWN = "fawn"
    BUCK = "buck"
    UNKNOWN = "unknown"


class Kind(StrEnum):
    """What a detection box holds, at the level the pipeline cares about."""

    DEER = "deer"
    ANIMAL = "animal"  # an animal that is not a deer: stored, never re-identified
    PERSON = "person"
    VEHICLE = "vehicle"


_SEX_OF: dict[DeerClass, Sex] = {
    DeerClass.DOE: Sex.DOE,
    DeerClass.FAWN: Sex.FAWN,
    DeerClass.YOUNG: Sex.BUCK,
    DeerClass.MID: Sex.BUCK,
    DeerClass.MATURE: Sex.BUCK,
    DeerClass.UNKNOWN: Sex.UNKNOWN,
}

# Classifier labels seen in the wild for the same deer classes.
_ALIASES: dict[str, DeerClass] = {
    "deer": DeerClass.UNKNOWN,
    "buck": DeerClass.MID,
    "antlered": DeerClass.MID,
    "spike": DeerClass.YOUNG,
    "antlerless": DeerClass.UNKNOWN,
}


class UnknownClassError(Invalid):
    """A label that is neither a deer class nor a known non-deer label."""


def sex_for_class(deer_class: DeerClass | str) -> Sex:
    """doe→doe, fawn→fawn, young/mid/mature→buck, unknown→unknown."""
    try:
        return _SEX_OF[DeerClass(deer_class)]
    except ValueError as exc:
        raise UnknownClassError(f"not a deer class: {deer_class!r}") from exc


def deer_class_for_label(label: str) -> DeerClass | None:
    """Deer class for a classifier label, or None when the label is not a deer.

    Matching is case-insensitive and ignores surrounding spaces, so
    "Mature", " doe " and "DOE" all work.
    """
    key = label.strip().lower()
    if key in DeerClass._value2member_map_:
        return DeerClass(key)
    if key in _ALIASES:
        return _ALIASES[key]
    # Species-level classifiers (SpeciesNet, regional models) say "white-tailed deer",
    # "mule deer" or give a taxonomy string; any of those is a deer of unknown class.
    words = key.replace("_", " ").split()
    if words[-1:] == ["deer"] or "cervidae" in key or "odocoileus" in key:
        return DeerClass.UNKNOWN
    return None


def kind_for_category(category_name: str) -> Kind:
    """Kind for a MegaDetector detection category name (animal/person/vehicle)."""
    key = category_name.strip().lower()
    if key == "animal":
        return Kind.ANIMAL
    if key == "person":
        return Kind.PERSON
    if key == "vehicle":
        return Kind.VEHICLE
    raise UnknownClassError(f"unknown detection category: {category_name!r}")
