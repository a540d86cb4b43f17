"""When animals come: visits counted by hour, daylight phase, moon phase and week of the season.

A *visit* is one animal in one encounter (docs/encounters.md): a buck standing at a feeder for
forty photos came once, so activity counts visits, not photos. Times are the camera's local
clock (corrected by its offset), as people read them on the strip.

Daylight needs the sun's position, so the camera's coordinates and the time zone its clock
keeps. The phase comes from the sun's elevation (offline, astral), not from sunrise tables,
so it also holds where the sun does not set:
- day: the sun's centre above -0.833° (the sunrise/sunset convention, refraction included);
- dawn / dusk: civil twilight, the sun between -6° and -0.833°, in the morning / evening;
- night: below -6°.
A camera without coordinates gives "unknown" for daylight; every other count still works.

Which zone a camera's clock keeps is rarely recorded. A zone people set (DEERID_TIMEZONE) is
used as it is. Otherwise the machine's own zone is used where it fits the camera's longitude
(within 2 hours of the sun's local time there: a hunter's laptop near the stand), and local
mean solar time (longitude / 15° per hour) where it does not (a server kept on UTC): a clock
off by its daylight-saving hour moves only visits near dawn or dusk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Literal

from astral import Observer, moon
from astral.sun import azimuth, elevation

Daylight = Literal["night", "dawn", "day", "dusk", "unknown"]
DAYLIGHT: tuple[Daylight, ...] = ("night", "dawn", "day", "dusk", "unknown")

# Eight phases of astral's 0–28 moon age scale (0 new, 7 first quarter, 14 full, 21 last quarter),
# each centred on its own point: a "full moon" visit is one within 1.75 days of full.
MOON_PHASES = (
    "new moon",
    "waxing crescent",
    "first quarter",
    "waxing gibbous",
    "full moon",
    "waning gibbous",
    "last quarter",
    "waning crescent",
)
_MOON_SCALE = 28.0

SUNRISE_ELEVATION = -0.833
CIVIL_TWILIGHT = -6.0


_FIT_HOURS = 2.0


def clock_zone(local: datetime, longitude: float, zone: tzinfo, *, configured: bool) -> tzinfo:
    """The zone to read a camera's clock time in (see the module's note)."""
    if configured:
        return zone
    solar = timedelta(hours=longitude / 15.0)
    offset = local.replace(tzinfo=zone).utcoffset() or timedelta(0)
    if abs(offset - solar) <= timedelta(hours=_FIT_HOURS):
        return zone
    return timezone(timedelta(minutes=round(longitude * 4)))


def daylight_phase(
    local: datetime,
    latitude: float | None,
    longitude: float | None,
    zone: tzinfo,
    *,
    configured: bool = True,
) -> Daylight:
    """The daylight phase at a camera's local clock time `local` (naive), kept in `zone`
    (or, when the zone was not `configured`, in the zone `clock_zone` picks)."""
    if latitude is None or longitude is None:
        return "unknown"
    observer = Observer(latitude=latitude, longitude=longitude)
    when = local.replace(tzinfo=clock_zone(local, longitude, zone, configured=configured))
    height = elevation(observer, when)
    if height > SUNRISE_ELEVATION:
        return "day"
    if height < CIVIL_TWILIGHT:
        return "night"
    # Twilight: the sun is east of the meridian in the morning, in either hemisphere.
    return "dawn" if azimuth(observer, when) < 180.0 else "dusk"


def moon_phase(day: date) -> str:
    """The named phase of the moon on `day` (one of MOON_PHASES)."""
    age = moon.phase(day)
    return MOON_PHASES[int((age + _MOON_SCALE / 16) // (_MOON_SCALE / 8)) % 8]


def season_start(day: date, start_month: int, start_day: int) -> date:
    """The first day of the season that `day` falls in (a season runs a year from its start)."""
    this_year = date(day.year, start_month, start_day)
    return this_year if day >= this_year else date(day.year - 1, start_month, start_day)


def season_week(day: date, start_month: int, start_day: int) -> int:
    """0 for the season's first seven days, 1 for the next, ..."""
    return (day - season_start(day, start_month, start_day)).days // 7


@dataclass(frozen=True)
class Visit:
    """One animal in one encounter: its first sighting there, on the camera's clock."""

    deer_id: str
    camera_id: int | None
    local_time: datetime | None
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class Activity:
    visits: int = 0
    undated: int = 0  # visits with no trustworthy time: counted, but in no time bin
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    by_daylight: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DAYLIGHT, 0))
    by_moon: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MOON_PHASES, 0))
    by_week: list[tuple[date, int]] = field(default_factory=list)  # (week's first day, visits)


def activity(
    visits: Iterable[Visit], zone: tzinfo, *, season: tuple[int, int] = (8, 1), configured: bool = True
) -> Activity:
    """Counts of `visits` by hour, daylight phase, moon phase and week of the season, whose
    first day is `season` (month, day). `configured`: `zone` was set by a person (see
    `clock_zone`)."""
    season_month, season_day = season
    out = Activity()
    weeks: Counter[date] = Counter()
    for visit in visits:
        out.visits += 1
        when = visit.local_time
        if when is None:
            out.undated += 1
            continue
        out.by_hour[when.hour] += 1
        out.by_daylight[
            daylight_phase(when, visit.latitude, visit.longitude, zone, configured=configured)
        ] += 1
        out.by_moon[moon_phase(when.date())] += 1
        start = season_start(when.date(), season_month, season_day)
        weeks[start + timedelta(days=7 * season_week(when.date(), season_month, season_day))] += 1
    out.by_week = sorted(weeks.items())
    return out
