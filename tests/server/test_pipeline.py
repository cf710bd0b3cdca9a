"""The worker: a command nobody waits for still has its failure logged and counted."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from harness.waiting import eventually
from server.ingest.pipeline import Call, Pipeline
from server.ingest.receipts import Receipts
from server.ingest.sessions import Inbound, Inbox
from server.orders import OrderRefused, presence
from server.rules.refusals import refusal
from server.runtime.log_limit import LimitedLog
from server.runtime.supervise import Stage, supervised
from server.store import Alarm, Order, open_database
from tests.order_book import T0, order_book
from tests.wire.test_wire import KILLERS
from wire import CHANNELS, Channel, Topics, decode


def failures(step: str) -> float:
    return REGISTRY.get_sample_value("fieldlink_step_failures_total", {"step": step}) or 0.0


def test_a_call_nobody_waits_for_has_its_failure_logged_and_counted(tmp_path, caplog) -> None:
    open_database(f"sqlite:///{tmp_path / 'fieldlink.db'}")
    inbox = Inbox()
    pipeline = Pipeline(Topics("fieldlink"), inbox, None, None, None, None)

    def late_delivery() -> None:  # as a terminal confirming an order since cancelled
        raise OrderRefused(refusal("order_ended", order="o-1", state="cancelled"))

    def broken_apply() -> None:
        raise KeyError("fix")

    before = failures("late_delivery"), failures("broken_apply")
    worker = threading.Thread(target=pipeline.run)
    with caplog.at_level(logging.WARNING, logger="server.ingest.pipeline"):
        worker.start()
        inbox.put(Call(late_delivery), urgent=True)
        inbox.put(Call(broken_apply))
        waited = Call(late_delivery, awaited=True)  # its caller gets the error instead
        inbox.put(waited, urgent=True)
        eventually(lambda: waited.done.is_set() and failures("broken_apply") > before[1])
        pipeline.stop()
        worker.join(timeout=5)
    assert (failures("late_delivery"), failures("broken_apply")) == (before[0] + 1, before[1] + 1)
    assert isinstance(waited.error, OrderRefused)
    assert "late_delivery failed: order o-1 is already cancelled" in caplog.text
    assert "broken_apply failed" in caplog.text and "Traceback" in caplog.text


# -- nothing a unit sends stops the worker ---------------------------------------------------
class Broker:
    """What the pipeline tells the broker: every message acknowledged, once."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []

    def ack(self, message: Inbound) -> None:
        self.acked.append(message.mid)

    def publish(self, topic: str, payload: bytes, _channel: Channel) -> None:
        self.published.append((topic, payload))


class Store:
    """The store writer's part: rows taken, then `stored` at once."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def put(self, rows: list[dict], stored) -> None:
        self.rows.extend(rows)
        stored()


@pytest.fixture
def worker(tmp_path):
    book = order_book(tmp_path)
    book.add_unit("car-1", at=(35.40, 116.58))
    book.add_unit("car-2", at=(35.401, 116.58))
    broker, store = Broker(), Store()
    receipts = Receipts(broker.publish, Topics(), interval_s=1.0)
    pipeline = Pipeline(Topics(), Inbox(), broker, book.live, book.book, store, receipts)
    return pipeline, broker, store, book


PAYLOADS = st.one_of(
    st.sampled_from(KILLERS),
    st.binary(max_size=64),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "ts",
                        "lat",
                        "lon",
                        "batch",
                        "alarm_id",
                        "kind",
                        "fix",
                        "order_id",
                        "status",
                        "online",
                        "x",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    ).map(lambda data: json.dumps(data).encode()),
)
TOPICS = st.sampled_from(
    [f"fieldlink/v1/units/car-1/{c.value}" for c in Channel if CHANNELS[c].per_unit]
    + ["fieldlink/v1/units/stranger/position", "fieldlink/v1/units/car-1/x", "other/topic"]
)


def test_no_payload_on_any_topic_stops_the_worker_or_goes_unacknowledged(worker) -> None:
    pipeline, broker, store, book = worker
    receipts = pipeline.receipts
    sent = []

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(TOPICS, PAYLOADS)
    def fuzz(topic: str, payload: bytes) -> None:
        mid = len(sent) + 1
        sent.append(mid)
        pipeline.on_inbound(Inbound(topic, payload, T0 + mid, mid, 1))  # never raises

    fuzz()
    assert sorted(broker.acked) == sent  # each once: none left for the broker to redeliver
    before = len(store.rows)
    later = T0 + 100_000  # after anything the fuzz sent
    good_fix = Inbound(TOPICS_OF["position"], b'{"ts":%f,"lat":35.4,"lon":116.6}' % later, later, 0)
    pipeline.on_inbound(good_fix)
    assert len(store.rows) == before + 1 and book.live.get("car-1").fix["lon"] == 116.6
    panic = b'{"alarm_id":"after-the-fuzz","ts":%f,"kind":"panic"}' % T0
    pipeline.on_inbound(Inbound(TOPICS_OF["alarm"], panic, T0, 0))
    incident = Alarm.get(Alarm.alarm_id == "after-the-fuzz").incident
    assert incident is not None and Order.select().where(Order.incident == incident).exists()
    assert any(b"after-the-fuzz" in payload for _, payload in broker.published)  # confirmed
    receipts.flush()
    for topic, payload in broker.published:  # built without the schema, held to it here
        assert topic.endswith("/receipt") and decode(Channel.RECEIPT, payload)["ts"]


TOPICS_OF = {
    c.value: f"fieldlink/v1/units/car-1/{c.value}" for c in Channel if CHANNELS[c].per_unit
}


def test_a_step_that_fails_is_counted_and_the_message_still_goes_through_its_chain(
    worker, monkeypatch
) -> None:
    pipeline, broker, store, _desk = worker

    def broken(*_: Any) -> None:
        raise RuntimeError("a geofence that broke")

    monkeypatch.setattr(presence, "heard", broken)  # the first step of every chain
    before = failures("heard")
    pipeline.on_inbound(Inbound(TOPICS_OF["position"], b'{"ts":1,"lat":1,"lon":2}', T0, 7, 1))
    pipeline.on_inbound(
        Inbound(TOPICS_OF["alarm"], b'{"alarm_id":"a","ts":1,"kind":"panic"}', T0, 8, 1)
    )
    assert failures("heard") == before + 2
    assert broker.acked == [7, 8] and store.rows[-1]["lat"] == 1.0
    assert Alarm.select().where(Alarm.alarm_id == "a").exists()  # the panic was not held up


def test_a_loop_that_raises_is_started_again_and_its_stage_says_when_it_last_beat() -> None:
    stage = Stage("test_loop", stall_s=0.2)
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        stage.beat()
        if len(runs) < 3:
            raise RuntimeError("a loop that broke")

    restarts = REGISTRY.get_sample_value("fieldlink_stage_restarts_total", {"stage": "test_loop"})
    supervised(stage, loop, lambda: len(runs) < 3, lambda _s: None)()
    assert len(runs) == 3
    after = REGISTRY.get_sample_value("fieldlink_stage_restarts_total", {"stage": "test_loop"})
    assert after - (restarts or 0) == 2
    assert not stage.stalled()
    stage.last_beat -= 1.0
    assert stage.stalled() and stage.silent_s() >= 1.0


def test_a_flood_of_one_kind_of_line_is_logged_a_few_times_then_counted(caplog) -> None:
    now = [0.0]
    limited = LimitedLog(
        logging.getLogger("test.flood"), per_window=3, window_s=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="test.flood"):
        for n in range(1000):
            limited.warning("invalid", "bad message %d", n)
        limited.warning("other", "a different kind")
        now[0] = 61.0
        limited.warning("invalid", "bad message again")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bad message 0",
        "bad message 1",
        "bad message 2",
        "a different kind",
        "997 more 'invalid' lines were left out",
        "bad message again",
    ]
