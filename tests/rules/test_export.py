"""Exports: a track as GeoJSON and GPX, incidents and figures as CSV."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

from server.rules.export import GPX_NS, incidents_csv, kpis_csv, track_geojson, track_gpx
from server.rules.kpis import kpis_by
from tests.rules.test_kpis import city_day

FIXES = [
    {"ts": 1_800_000_000.0, "lat": 31.23, "lon": 121.47},
    {"ts": 1_800_000_010.0, "lat": 31.231, "lon": 121.4705},
]


def test_a_track_as_geojson_keeps_its_times() -> None:
    [line] = track_geojson("car-1", FIXES)["features"]
    assert line["geometry"]["coordinates"] == [[121.47, 31.23], [121.4705, 31.231]]
    assert line["properties"]["times"] == [1_800_000_000.0, 1_800_000_010.0]
    assert track_geojson("car-1", [])["features"][0]["properties"]["from"] is None


def test_a_track_as_gpx_that_gis_tools_read() -> None:
    root = ET.fromstring(track_gpx("car-1", "Car 1 巡逻", FIXES))
    ns = {"g": GPX_NS}
    assert root.tag == f"{{{GPX_NS}}}gpx" and root.get("version") == "1.1"
    assert root.find("g:trk/g:name", ns).text == "Car 1 巡逻 (car-1)"
    points = root.findall("g:trk/g:trkseg/g:trkpt", ns)
    assert [(p.get("lat"), p.get("lon")) for p in points] == [
        ("31.2300000", "121.4700000"),
        ("31.2310000", "121.4705000"),
    ]
    assert points[0].find("g:time", ns).text == "2027-01-15T08:00:00Z"


def test_incidents_as_csv() -> None:
    incident = {
        "id": "i1",
        "category": "dispute",
        "priority": 2,
        "state": "closed",
        "grid": "G01",
        "location": {"lat": 31.23, "lon": 121.47, "address": "南京东路 100 号, Shanghai"},
        "first_unit": "car-1",
        "created_at": 1_800_000_000.0,
        "dispatched_at": 1_800_000_030.0,
        "on_scene_at": 1_800_000_200.0,
        "resolved_at": 1_800_001_000.0,
        "handed_over_at": None,
        "closed_at": 1_800_001_100.0,
        "arrival_s": 170.0,
        "disposition": "settled",
        "followup_at": None,
    }
    [row] = list(csv.DictReader(io.StringIO(incidents_csv([incident]))))
    assert row["address"] == "南京东路 100 号, Shanghai"
    assert row["dispatched"] == "2027-01-15T08:00:30+00:00" and row["handed_over"] == ""
    assert row["arrival_s"] == "170.0" and row["followup"] == ""


def test_figures_as_csv_one_row_per_group() -> None:
    figures = kpis_by(city_day(), "grid", ZoneInfo("Asia/Shanghai"))
    rows = list(csv.DictReader(io.StringIO(kpis_csv(figures))))
    assert [r["group"] for r in rows] == ["all", "G01", "G02"]
    assert rows[0]["dispatch_to_arrival_median_s"] == "150.0"
    assert rows[0]["arrived_within_5min"] == "0.5"
    assert rows[2]["followups_done"] == "0.0"  # its one closed incident got no call back
    assert rows[2]["on_scene_resolution_rate"] == "1.0"
