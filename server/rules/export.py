"""Exports: tracks as GeoJSON and GPX, incidents and response figures as CSV. Pure: records
in, text (or a GeoJSON dict) out, so a replay on the map and a file for a spreadsheet or a
GIS come from the same data."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

GPX_NS = "http://www.topografix.com/GPX/1/1"


def iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def track_geojson(unit_id: str, fixes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The track as one LineString, its fix times alongside (for replaying it in time)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "unit_id": unit_id,
                    "fixes": len(fixes),
                    "times": [f["ts"] for f in fixes],
                    "from": fixes[0]["ts"] if fixes else None,
                    "to": fixes[-1]["ts"] if fixes else None,
                },
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[f["lon"], f["lat"]] for f in fixes],
                },
            }
        ],
    }


def track_gpx(unit_id: str, name: str, fixes: Sequence[dict[str, Any]]) -> str:
    ET.register_namespace("", GPX_NS)
    gpx = ET.Element(f"{{{GPX_NS}}}gpx", version="1.1", creator="fieldlink")
    trk = ET.SubElement(gpx, f"{{{GPX_NS}}}trk")
    ET.SubElement(trk, f"{{{GPX_NS}}}name").text = f"{name} ({unit_id})"
    segment = ET.SubElement(trk, f"{{{GPX_NS}}}trkseg")
    for f in fixes:
        point = ET.SubElement(
            segment, f"{{{GPX_NS}}}trkpt", lat=f"{f['lat']:.7f}", lon=f"{f['lon']:.7f}"
        )
        ET.SubElement(point, f"{{{GPX_NS}}}time").text = iso(f["ts"]).replace("+00:00", "Z")
    return ET.tostring(gpx, encoding="unicode", xml_declaration=True)


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


INCIDENT_COLUMNS = (
    "id",
    "category",
    "priority",
    "state",
    "grid",
    "address",
    "lat",
    "lon",
    "first_unit",
    "created",
    "dispatched",
    "on_scene",
    "resolved",
    "handed_over",
    "closed",
    "arrival_s",
    "disposition",
    "followup",
)


def incidents_csv(incidents: Iterable[dict[str, Any]]) -> str:
    """Incidents as the API shows them (`incident_public`), one row each, times in UTC."""

    def row(i: dict[str, Any]) -> list[Any]:
        return [
            i["id"],
            i["category"],
            i["priority"],
            i["state"],
            i["grid"] or "",
            i["location"]["address"],
            i["location"]["lat"],
            i["location"]["lon"],
            i["first_unit"] or "",
            *(iso(i[f"{step}_at"]) for step in INCIDENT_STEPS),
            "" if i["arrival_s"] is None else i["arrival_s"],
            i["disposition"] or "",
            iso(i["followup_at"]),
        ]

    return _csv(INCIDENT_COLUMNS, (row(i) for i in incidents))


INCIDENT_STEPS = ("created", "dispatched", "on_scene", "resolved", "handed_over", "closed")
DURATION_FIGURES = ("call_to_dispatch", "dispatch_to_acknowledge", "dispatch_to_arrival")
RATE_FIGURES = (
    "first_response_rate",
    "on_scene_resolution_rate",
    "same_day_closure_rate",
    "followups_done",
)


def kpis_csv(figures: dict[str, Any]) -> str:
    """One row for all incidents and one per group, every figure a column."""
    header = ["group", "incidents"]
    header += [
        f"{name}_{stat}" for name in DURATION_FIGURES for stat in ("mean_s", "median_s", "p90_s")
    ]
    header += [f"arrived_within_{limit}" for limit in ("1min", "3min", "5min")]
    header += list(RATE_FIGURES)

    def row(group: str, k: dict[str, Any]) -> list[Any]:
        values: list[Any] = [group, k["incidents"]]
        values += [
            k[name][stat] for name in DURATION_FIGURES for stat in ("mean_s", "median_s", "p90_s")
        ]
        values += [k["arrived_within"][limit]["rate"] for limit in ("1min", "3min", "5min")]
        values += [k[name]["rate"] for name in RATE_FIGURES]
        return ["" if v is None else v for v in values]

    names = figures.get("officers", {})  # an officer's group says who as well
    rows = [row("all", figures["all"])]
    rows += [
        row(" ".join(filter(None, (group, names.get(group)))), k)
        for group, k in figures.get("groups", {}).items()
    ]
    return _csv(header, rows)


PATROL_FIGURES = ("km", "moving_s", "stationary_s", "no_data_s", "in_home_grid_s")


def patrol_csv(
    units: Iterable[dict[str, Any]],
    grids: Iterable[dict[str, Any]],
    officers: Iterable[dict[str, Any]] = (),
) -> str:
    """A shift's patrol: one row per unit, then one per home grid (its units added up), then
    one per officer (the units they were on, while on them)."""
    header = ("unit_id", "home_grid", "officer", "name", "units", *PATROL_FIGURES, "long_stops")

    def line(who: list[Any], units: int, row: dict[str, Any], long_stops: int) -> list[Any]:
        return [*who, units, *(row[f] for f in PATROL_FIGURES), long_stops]

    rows = [
        line([u["unit_id"], u["home_grid"] or "", "", ""], 1, u, len(u["stops"])) for u in units
    ]
    rows += [line(["", g["grid"], "", ""], g["units"], g, g["long_stops"]) for g in grids]
    rows += [
        line(["", "", o["officer"], o["name"]], o["units"], o, o["long_stops"]) for o in officers
    ]
    return _csv(header, rows)
