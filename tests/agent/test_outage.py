"""Nothing lost when the link or the agent dies: a 60 s broker outage, and `kill -9`.

Both run the real things: mosquitto (stopped and restarted on its port, sessions persisted),
gpsd fed by gpsfake at about 1 Hz, and in the second test the `fieldlink-agent` program.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.app import Agent
from edge_agent.config import GpsdSettings, HealthSettings, PanicSettings
from edge_agent.outbox import Outbox, Uplink
from harness.services import nmea_slice
from harness.waiting import eventually
from tests.agent.conftest import UNIT, agent_settings, halt
from wire import Channel, Topics

OUTAGE_S = 60.0  # the figure: a minute in a tunnel or a dead cell
ONE_HZ = 0.03  # gpsfake seconds per line: bundg_zeus_9 has ~34 lines per second of fixes
AGENT = str(Path(sys.executable).parent / "fieldlink-agent")


def test_broker_down_for_a_minute_under_a_1hz_agent_loses_nothing(
    tmp_path, own_mosquitto, observer, gps_replay, mock_gpio, nmea_dir
):
    log = nmea_slice(nmea_dir / "bundg_zeus_9.log", tmp_path / "s.log", 0, 3000)
    fake = gps_replay(log, ONE_HZ)
    settings = agent_settings(
        tmp_path,
        own_mosquitto.url,
        gpsd=GpsdSettings(port=fake.port),
        panic=PanicSettings(pin=17, hold_s=0.1),
        health=HealthSettings(interval_s=5),
    )
    # back within a second of the broker, not after paho's 30 s backoff
    settings = dataclasses.replace(
        settings, mqtt=dataclasses.replace(settings.mqtt, reconnect_max_s=1.0)
    )
    obs = observer(own_mosquitto.url)
    agent = Agent(settings)
    queued: list[tuple[Channel, dict]] = []  # what the agent handed to its outbox, in order
    send = agent.uplink.send

    def recording_send(channel: Channel, message: dict) -> int:
        row = send(channel, message)
        if channel in (Channel.POSITION, Channel.ALARM):
            queued.append((channel, message))
        return row

    agent.uplink.send = recording_send

    def sent(channel: Channel) -> list[dict]:
        return [message for ch, message in queued if ch is channel]

    agent.start()
    try:
        eventually(lambda: len(obs.fixes()) >= 3, timeout=20, what="live positions")
        own_mosquitto.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S / 2)
        mock_gpio.pin(17).drive_low()  # the officer holds the panic button in the tunnel
        eventually(lambda: sent(Channel.ALARM), what="the alarm queued")
        mock_gpio.pin(17).drive_high()
        time.sleep(OUTAGE_S - (time.monotonic() - down_at))
        backlog = agent.outbox.depth()
        own_mosquitto.start()

        eventually(lambda: obs.on("alarm"), timeout=15, what="the alarm after the outage")
        eventually(lambda: agent.outbox.depth() <= 1, timeout=15, what="the backlog drained")
        halt(fake)  # no more fixes: the lists can settle
        eventually(
            lambda: [f["ts"] for f in obs.fixes()] == [f["ts"] for f in sent(Channel.POSITION)],
            timeout=15,
            what="every queued fix at the subscriber",
        )
    finally:
        agent.stop()

    times = [f["ts"] for f in obs.fixes()]
    assert times == sorted(set(times))  # exactly once, in fix order
    assert len(times) >= OUTAGE_S * 0.8  # about one a second, outage included
    assert backlog >= OUTAGE_S * 0.8
    assert [a["alarm_id"] for a in obs.on("alarm")] == [a["alarm_id"] for a in sent(Channel.ALARM)]
    batches = [p["batch"] for p in obs.on("position") if "batch" in p]
    assert batches and max(len(b) for b in batches) >= OUTAGE_S * 0.7  # the backlog, batched
    kinds = [name for name, payload, _ in obs.messages if name in ("alarm", "position")]
    first_batch = next(i for i, (name, payload, _) in enumerate(obs.messages) if "batch" in payload)
    assert "alarm" in kinds and kinds.index("alarm") < first_batch  # the alarm jumped the queue


def _outbox_rows(path: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT topic, payload FROM outbox ORDER BY id").fetchall()
    return [(topic.rsplit("/", 1)[1], json.loads(payload)) for topic, payload in rows]


def test_kill_9_with_a_full_outbox_then_restart_loses_nothing(
    tmp_path, own_mosquitto, observer, gps_replay, nmea_dir
):
    own_mosquitto.stop()  # the link is down: everything stays in the outbox
    db_path = tmp_path / "outbox.db"
    prefill = Uplink(Outbox(db_path), UNIT, Topics())  # a long night without a link
    for ts in range(1, 2001):
        prefill.send(Channel.POSITION, {"ts": 1_500_000_000 + ts, "lat": 52.0, "lon": 5.0})
    prefill.send(Channel.ALARM, {"alarm_id": "before-kill", "ts": 1, "kind": "panic"})
    prefill.send(Channel.ACK, {"order_id": "ord-1", "ts": 1, "status": "accepted"})
    prefill.outbox.close()

    log = nmea_slice(nmea_dir / "bundg_zeus_9.log", tmp_path / "s.log", 0, 5000)
    fake = gps_replay(log, 0.01)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[unit]\nid = "{UNIT}"\n'
        f'[mqtt]\nurl = "{own_mosquitto.url}"\nclient_id = "agent-kill-test"\n'
        "reconnect_max_s = 1.0\n"
        f"[gpsd]\nport = {fake.port}\n"
        f'[outbox]\npath = "{db_path}"\n'
        "[health]\ninterval_s = 1.0\n"
    )
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    output = (tmp_path / "agent.log").open("ab")

    def start_agent() -> subprocess.Popen:
        return subprocess.Popen(
            [AGENT, "--config", str(config)], env=env, stdout=output, stderr=output
        )

    agent = start_agent()
    try:
        # the running agent adds its own fixes (and health) to the 2,002 rows
        eventually(lambda: len(_outbox_rows(db_path)) >= 2010, timeout=30, what="live rows")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        halt(fake)  # no new fixes after the restart to muddy the count
        before = _outbox_rows(db_path)

        own_mosquitto.start()
        obs = observer(own_mosquitto.url)
        agent = start_agent()
        expected = [m["ts"] for ch, m in before if ch == "position"]
        eventually(
            lambda: {f["ts"] for f in obs.fixes()} >= set(expected),
            timeout=30,
            what="every fix that was in the outbox",
        )
        eventually(lambda: obs.on("ack") and obs.on("alarm"), what="the alarm and the ack")
        # rows leave only with the observer's receipts, which may trail its last fix
        eventually(
            lambda: all(ch == "state" for ch, _ in _outbox_rows(db_path)),
            what="every sent row confirmed and gone",
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)

    times = [f["ts"] for f in obs.fixes()]
    assert times == sorted(set(times)) and times[: len(expected)] == expected
    assert [a["alarm_id"] for a in obs.on("alarm")] == ["before-kill"]
    assert [a["order_id"] for a in obs.on("ack")] == ["ord-1"]
    assert any("batch" in p for p in obs.on("position"))
    assert all(ch == "state" for ch, _ in _outbox_rows(db_path))
