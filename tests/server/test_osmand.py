"""Traccar Client's reports read into fixes and panics, with the protocol's own units."""

from __future__ import annotations

import pytest

from server.ingest.osmand import ReportError, alarm, from_json, from_query

DEVICE = "k3Jv9QZr0_aLp-x7Tn2WbY5cHd8sEf1g"  # as `units add` issues one
NOW = 1_800_000_000.0


def test_the_query_form_gives_a_fix_in_metres_per_second_whatever_the_time_unit() -> None:
    args = {
        "id": DEVICE, "lat": "31.2304", "lon": "121.4737", "timestamp": "1799999990",
        "speed": "10", "bearing": "90.5", "altitude": "4", "accuracy": "12", "batt": "80",
    }  # fmt: skip
    report = from_query(args, NOW)
    assert report.device_id == DEVICE and not report.sos
    assert report.fix == {
        "ts": 1_799_999_990.0, "lat": 31.2304, "lon": 121.4737,
        "speed": pytest.approx(5.1444, abs=1e-3), "heading": 90.5, "alt": 4.0, "acc": 12.0,
    }  # fmt: skip
    in_ms = from_query({**args, "timestamp": "1799999990500"}, NOW)
    assert in_ms.fix is not None and in_ms.fix["ts"] == 1_799_999_990.5
    dated = from_query({**args, "timestamp": "2027-01-15 08:00:00"}, NOW)
    assert dated.fix is not None and dated.fix["ts"] == 1_800_000_000.0  # UTC
    untimed = from_query({"id": DEVICE, "lat": "31.2", "lon": "121.4"}, NOW)
    assert untimed.fix == {"ts": NOW, "lat": 31.2, "lon": 121.4}


def test_the_json_form_of_traccar_client_9_with_its_sos() -> None:
    body = {
        "device_id": DEVICE,
        "location": {
            "timestamp": "2027-01-15T08:00:00.250Z",
            "coords": {"latitude": 31.23, "longitude": 121.47, "accuracy": 5, "speed": 1.5,
                       "heading": 270, "altitude": 3},
            "battery": {"level": 0.8, "is_charging": False},
            "extras": {"alarm": "sos"},
        },
    }  # fmt: skip
    report = from_json(body, NOW)
    assert report.sos and report.fix is not None
    assert report.fix["speed"] == 1.5 and report.fix["ts"] == 1_800_000_000.25  # m/s as sent
    panic = alarm(report, NOW)
    assert panic["kind"] == "panic" and panic["fix"] == report.fix
    assert panic["alarm_id"] == alarm(from_json(body, NOW + 60), NOW + 60)["alarm_id"]  # resent


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"id": DEVICE, "lon": "121.4"}, "lat is missing"),
        ({"id": DEVICE, "lat": "nan", "lon": "121.4"}, "finite"),
        ({"id": DEVICE, "lat": "1e999", "lon": "121.4"}, "finite"),
        ({"id": DEVICE, "lat": "north", "lon": "121.4"}, "a number"),
        ({"id": DEVICE, "lat": "31", "lon": "121", "timestamp": "yesterday"}, "not a time"),
        ({"id": "car-1", "lat": "31", "lon": "121"}, "device id"),
        ({"lat": "31", "lon": "121"}, "device id"),
    ],
)
def test_a_report_that_cannot_be_read_says_why(args: dict, why: str) -> None:
    with pytest.raises(ReportError, match=why):
        from_query(args, NOW)


def test_an_sos_without_a_readable_position_is_still_an_sos() -> None:
    report = from_query({"id": DEVICE, "lat": "north", "alarm": "sos"}, NOW)
    assert report.sos and report.fix is None and "lat" in report.problem
    assert alarm(report, NOW) == {
        "alarm_id": f"sos-{round(NOW * 1000)}",
        "ts": NOW,
        "kind": "panic",
    }
    no_coords = from_json({"device_id": DEVICE, "location": {"extras": {"alarm": "SOS"}}}, NOW)
    assert no_coords.sos and no_coords.fix is None
    with pytest.raises(ReportError, match="device id"):  # but not without knowing whose
        from_query({"id": "x", "alarm": "sos"}, NOW)
