"""The durable outbox: drain order, durability across a reopen, latest-only channels, limit."""

from __future__ import annotations

import json

from edge_agent.outbox import Outbox, Uplink
from edge_agent.publisher import payload, plan
from wire import Channel, Topics, decode


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


def test_full_outbox_of_alarms_and_acks_drops_nothing(tmp_path):
    outbox = Outbox(tmp_path / "o.db", max_rows=2)
    up = Uplink(outbox, "car-7", Topics())
    up.send(Channel.POSITION, _fix(1))
    for n in range(3):
        up.send(Channel.ALARM, {"alarm_id": f"a{n}", "ts": n, "kind": "panic"})
    up.send(Channel.ACK, {"order_id": "o1", "ts": 3, "status": "received"})
    assert [msg.get("alarm_id") or msg.get("order_id") for _, msg in _drain_order(outbox)] == [
        "a0",
        "a1",
        "a2",
        "o1",
    ]
    assert outbox.dropped == 1 and outbox.depth() == 4


def test_depth_is_kept_across_deletes_and_a_reopen(tmp_path):
    up = _uplink(tmp_path / "o.db")
    ids = [up.send(Channel.POSITION, _fix(ts)) for ts in range(5)]
    up.outbox.delete(*ids[:3], 999)  # a batch's PUBACK; an id already gone counts nothing
    assert up.outbox.depth() == 2
    up.outbox.close()
    assert Outbox(tmp_path / "o.db").depth() == 2


def test_peek_skips_positions_in_flight_by_id(tmp_path):
    up = _uplink(tmp_path / "o.db")
    ids = [up.send(Channel.POSITION, _fix(ts)) for ts in (1, 2, 3)]
    alarm = up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 4, "kind": "panic"})
    assert [row.id for row in up.outbox.peek(10, positions_after=ids[1])] == [alarm, ids[2]]
    assert [row.id for row in up.outbox.peek(10, [alarm], positions_after=ids[2])] == []


def test_plan_sends_urgent_rows_alone_and_batches_positions(tmp_path):
    up = _uplink(tmp_path / "o.db")
    for ts in range(1, 6):
        up.send(Channel.POSITION, _fix(ts))
    up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 0, "kind": "panic"})
    up.send(Channel.ACK, {"order_id": "o1", "ts": 0, "status": "received"})
    rows = up.outbox.peek(100)

    messages = plan(rows, room=10, batch_size=2)
    decoded = [decode(Channel(m[0].topic.rsplit("/", 1)[1]), payload(m)) for m in messages]
    assert [len(m) for m in messages] == [1, 1, 2, 2, 1]
    assert decoded[0]["alarm_id"] == "a1" and decoded[1]["order_id"] == "o1"
    assert [[f["ts"] for f in batch] for batch in decoded[2:]] == [[1, 2], [3, 4], [5]]
    assert json.loads(payload(messages[4])) == _fix(5)  # a lone fix goes out bare
    assert [len(m) for m in plan(rows, room=3, batch_size=200)] == [1, 1, 5]
    assert [len(m) for m in plan(rows, room=1, batch_size=200)] == [1]
