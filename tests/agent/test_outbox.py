"""The durable outbox: drain order, durability across a reopen, latest-only channels, limit."""

from __future__ import annotations

import json

from edge_agent.outbox import Outbox, Uplink
from wire import Channel, Topics


def _uplink(path) -> Uplink:
    return Uplink(Outbox(path), "car-7", Topics())


def _fix(ts: float) -> dict:
    return {"ts": ts, "lat": 52.0, "lon": 5.0}


def _drain_order(outbox: Outbox) -> list[tuple[str, dict]]:
    return [(row.topic.rsplit("/", 1)[1], json.loads(row.payload)) for row in outbox.peek(100)]


def test_alarms_and_acks_drain_first_then_fifo(tmp_path):
    up = _uplink(tmp_path / "o.db")
    up.send(Channel.POSITION, _fix(1))
    up.send(Channel.POSITION, _fix(2))
    up.send(Channel.ACK, {"order_id": "o1", "ts": 3, "status": "received"})
    up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 4, "kind": "panic"})
    up.send(Channel.POSITION, _fix(5))
    up.send(Channel.ALARM, {"alarm_id": "a2", "ts": 6, "kind": "panic"})

    order = _drain_order(up.outbox)

    assert [(ch, msg.get("alarm_id") or msg.get("order_id") or msg["ts"]) for ch, msg in order] == [
        ("alarm", "a1"),
        ("alarm", "a2"),
        ("ack", "o1"),
        ("position", 1),
        ("position", 2),
        ("position", 5),
    ]


def test_rows_survive_a_reopen_until_acknowledged(tmp_path):
    path = tmp_path / "o.db"
    up = _uplink(path)
    alarm_row = up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 1, "kind": "panic"})
    up.send(Channel.POSITION, _fix(2))
    up.outbox.close()

    reopened = Outbox(path)
    assert reopened.peek(1)[0].id == alarm_row
    assert reopened.depth() == 2
    reopened.delete(alarm_row)  # the PUBACK came
    reopened.close()

    again = Outbox(path)
    assert [json.loads(r.payload)["ts"] for r in again.peek(10)] == [2]
    row = again.peek(1)[0]
    assert (row.qos, row.retain, row.topic) == (1, False, "fieldlink/v1/units/car-7/position")


def test_peek_skips_rows_in_flight(tmp_path):
    up = _uplink(tmp_path / "o.db")
    ids = [up.send(Channel.POSITION, _fix(ts)) for ts in (1, 2, 3)]
    assert [row.id for row in up.outbox.peek(10, exclude=ids[:2])] == [ids[2]]


def test_state_and_health_keep_only_the_newest_unsent(tmp_path):
    up = _uplink(tmp_path / "o.db")
    up.send(Channel.STATE, {"online": False, "ts": 1})
    up.send(Channel.STATE, {"online": True, "ts": 2})
    rows = up.outbox.peek(10)
    assert len(rows) == 1 and rows[0].retain and json.loads(rows[0].payload)["online"] is True


def test_full_outbox_drops_oldest_positions_never_the_alarm(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_rows=3)
    up = Uplink(outbox, "car-7", Topics())
    up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 0, "kind": "panic"})
    for ts in (1, 2, 3, 4):
        up.send(Channel.POSITION, _fix(ts))
    assert [msg.get("alarm_id") or msg["ts"] for _, msg in _drain_order(outbox)] == ["a1", 3, 4]
    assert outbox.dropped == 2
