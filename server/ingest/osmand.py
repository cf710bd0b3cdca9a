"""Traccar Client's reports (the OsmAnd protocol) read into the wire contract's messages.

Two forms reach `/osmand`: the query form of the classic apps (`id`, `lat`, `lon`,
`timestamp` in seconds or milliseconds, `speed` in knots, `bearing`, `altitude`, `accuracy`,
`batt`, `alarm`) by GET or POST, and the JSON body of Traccar Client 9+ (`device_id` and
`location{timestamp, coords{latitude, longitude, accuracy, speed in m/s, heading, altitude},
battery, extras}`). Each becomes a fix and, for an SOS, a panic; what the rest of the server
does with them is what it does with an agent's (`server/ingest/steps.py`).

Pure: no I/O; `server/web/phones.py` is the endpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KNOT_MS = 1852 / 3600  # the query form's speed is in knots
# a device id is the unit's device token (`fieldlink units add`): URL-safe, long and random
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
MS_AFTER = 1e11  # a numeric time past this is in milliseconds (1e11 s is the year 5138)


class ReportError(ValueError):
    """A report that cannot be read; the text says what is wrong (the answer's body)."""


@dataclass(frozen=True)
class Report:
    device_id: str
    fix: dict[str, Any] | None  # None: no readable position (an SOS still counts)
    sos: bool
    ts: float | None  # the device's time of the report, if it gave one
    problem: str = ""  # why the position could not be read


# a fix's fields (the wire's names) as each form names them; `lat` and `lon` are required
QUERY_FIELDS = {"lat": "lat", "lon": "lon", "speed": "speed", "heading": "bearing",
                "alt": "altitude", "acc": "accuracy"}  # fmt: skip
JSON_FIELDS = {"lat": "latitude", "lon": "longitude", "speed": "speed", "heading": "heading",
               "alt": "altitude", "acc": "accuracy"}  # fmt: skip


def from_query(args: Mapping[str, str], now: float) -> Report:
    """The query (or form) fields of a classic report; its speed is in knots."""
    sos = args.get("alarm", "").lower() == "sos"
    device_id = _device_id(args.get("id") or args.get("deviceid"))
    return _report(device_id, sos, args, QUERY_FIELDS, args.get("timestamp"), now, KNOT_MS)


def from_json(body: Any, now: float) -> Report:
    """The JSON body of Traccar Client 9+; its speed is in m/s."""
    if not isinstance(body, dict):
        raise ReportError("the body is not a JSON object")
    location = body.get("location")
    location = location if isinstance(location, dict) else {}
    extras = location.get("extras")
    sos = isinstance(extras, dict) and str(extras.get("alarm", "")).lower() == "sos"
    device_id = _device_id(body.get("device_id"))
    coords = location.get("coords")
    coords = coords if isinstance(coords, dict) else {}
    return _report(device_id, sos, coords, JSON_FIELDS, location.get("timestamp"), now, 1.0)


def _report(
    device_id: str,
    sos: bool,
    fields: Mapping[str, Any],
    names: Mapping[str, str],
    timestamp: Any,
    now: float,
    speed_factor: float,
) -> Report:
    """The report of one form: its fix, or (for an SOS) why its position cannot be read."""
    try:
        ts = _time(timestamp, now)
        fix: dict[str, Any] = {"ts": ts}
        for ours, theirs in names.items():
            value = _number(fields, theirs, required=ours in ("lat", "lon"))
            if value is not None:
                fix[ours] = value * speed_factor if ours == "speed" else value
    except ReportError as exc:
        if not sos:
            raise
        return Report(device_id, None, True, None, str(exc))
    return Report(device_id, fix, sos, ts)


def alarm(report: Report, now: float) -> dict[str, Any]:
    """The panic an SOS raises. Its id comes from the report's time, so the app sending the
    same report again raises no second alarm; without a time, each is a press of its own
    (and joins the open incident)."""
    ts = report.ts if report.ts is not None else now
    message: dict[str, Any] = {"alarm_id": f"sos-{round(ts * 1000)}", "ts": ts, "kind": "panic"}
    if report.fix is not None:
        message["fix"] = report.fix
    return message


def _device_id(value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_ID.fullmatch(value):
        raise ReportError("id: the device id `fieldlink units add` printed for this phone")
    return value


def _number(fields: Mapping[str, Any], name: str, required: bool = True) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise ReportError(f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise ReportError(f"{name}: a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReportError(f"{name}: a number, not {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ReportError(f"{name}: a finite number")
    return number


def _time(value: Any, now: float) -> float:
    """Seconds or milliseconds since 1970, or an ISO 8601 time; missing: `now`."""
    if value is None or value == "":
        return now
    if isinstance(value, str) and not _is_number(value):
        try:
            when = datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            raise ReportError(f"timestamp: not a time: {value[:40]!r}") from None
        # without a zone, UTC: the apps send their times in UTC
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    seconds = _number({"timestamp": value}, "timestamp")
    assert seconds is not None  # required
    return seconds / 1000 if seconds > MS_AFTER else seconds


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
