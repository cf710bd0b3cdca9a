"""The durable outbox: drain order, durability across a reopen, latest-only channels, limit."""

from __future__ import annotations

import json
import sqlite3
import time

from edge_agent.outbox import PRIORITY, Outbox, Uplink
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


def test_what_the_broker_took_waits_for_the_servers_receipt(tmp_path):
    up = _uplink(tmp_path / "o.db")
    alarm = up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 1, "kind": "panic"})
    ack = up.send(Channel.ACK, {"order_id": "o1", "ts": 2, "status": "accepted"})
    fixes = [up.send(Channel.POSITION, _fix(ts)) for ts in (3, 4, 5)]
    state = up.send(Channel.STATE, {"online": True, "ts": 6})
    up.outbox.acknowledged(alarm, ack, *fixes, state)  # the PUBACKs
    assert up.outbox.depth() == 5 and up.outbox.unconfirmed() == 5  # state left: no receipt
    # with the broker: not sent again unasked (positions by the publisher's mark, kept in
    # memory: nothing is written to the card for a position's PUBACK)
    assert up.outbox.peek(10, positions_after=fixes[-1]) == []

    assert up.outbox.confirm({"ts": 9, "alarms": ["a1"], "positions": 4.0}) == 3
    assert up.outbox.confirm({"ts": 9, "acks": [{"order_id": "o1", "status": "accepted"}]}) == 1
    assert up.outbox.confirm({"ts": 9, "alarms": ["a1"]}) == 0  # a receipt again: nothing
    assert up.outbox.depth() == 1  # the fix at 5 waits for the next mark
    assert [row.id for row in up.outbox.peek(10)] == [fixes[2]]  # confirmed ones never again
    up.outbox.close()  # the confirmed fixes leave the file with the next write, or at close
    assert Outbox(tmp_path / "o.db").depth() == 1


def test_unconfirmed_rows_go_again_after_a_reconnect_or_alarms_after_a_timeout(tmp_path):
    up = _uplink(tmp_path / "o.db")
    alarm = up.send(Channel.ALARM, {"alarm_id": "a1", "ts": 1, "kind": "panic"})
    fix = up.send(Channel.POSITION, _fix(2))
    up.outbox.acknowledged(alarm, fix)
    alarms_and_acks = (PRIORITY[Channel.ALARM], PRIORITY[Channel.ACK])
    assert up.outbox.send_again(time.time() - 30, alarms_and_acks) == 0  # not yet overdue
    assert up.outbox.send_again(time.time() + 1, alarms_and_acks) == 1  # overdue: the alarm
    assert [row.id for row in up.outbox.peek(10, positions_after=fix)] == [alarm]
    assert up.outbox.send_again(time.time() + 1) == 1  # a reconnect: everything, the fix too
    assert [row.id for row in up.outbox.peek(10)] == [alarm, fix]


def test_an_outbox_from_before_receipts_gains_their_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL,"
        " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,"
        " retain INTEGER NOT NULL, created REAL NOT NULL);"
        "INSERT INTO outbox (priority, topic, payload, qos, retain, created)"
        " VALUES (0, 'fieldlink/v1/units/car-7/alarm', x'7b7d', 1, 0, 1.0);"
    )
    con.close()
    outbox = Outbox(path)
    assert outbox.depth() == 1 and outbox.peek(1)[0].topic.endswith("/alarm")
    outbox.acknowledged(outbox.peek(1)[0].id)  # no key to be confirmed by: it goes at PUBACK
    assert outbox.depth() == 0
