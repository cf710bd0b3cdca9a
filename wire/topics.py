"""Topic names of wire protocol v1: `{root}/units/{unit}/{channel}`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_ROOT = "fieldlink/v1"
UNIT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_UNIT_ID = re.compile(rf"^{UNIT_ID_PATTERN}$")


class Channel(StrEnum):
    POSITION = "position"
    ALARM = "alarm"
    ACK = "ack"
    STATE = "state"
    HEALTH = "health"
    ORDERS = "orders"
    RECEIPT = "receipt"
    CALL = "call"
    SERVER = "server"  # {root}/server: the server's word to every unit


@dataclass(frozen=True)
class ChannelRule:
    """How a channel travels: who sends it, at which QoS, retained or not."""

    upstream: bool  # unit -> server
    qos: int
    retain: bool
    per_unit: bool = True  # {root}/units/{unit}/{channel}; else {root}/{channel}, to all


CHANNELS: dict[Channel, ChannelRule] = {
    Channel.POSITION: ChannelRule(upstream=True, qos=1, retain=False),
    Channel.ALARM: ChannelRule(upstream=True, qos=1, retain=False),
    Channel.ACK: ChannelRule(upstream=True, qos=1, retain=False),
    Channel.STATE: ChannelRule(upstream=True, qos=1, retain=True),
    Channel.HEALTH: ChannelRule(upstream=True, qos=0, retain=False),
    Channel.ORDERS: ChannelRule(upstream=False, qos=1, retain=False),
    # what the server has stored of the unit's alarms, acks and positions: only then do
    # they leave the unit's outbox. QoS 0: one lost (the unit offline just then) costs a
    # resend, which the unit makes after every reconnect anyway, and thousands a minute in
    # QoS 1 cost the server's ingest a PUBACK each
    Channel.RECEIPT: ChannelRule(upstream=False, qos=0, retain=False),
    # how the unit's own call for help goes (received, dispatched, units coming, on scene)
    Channel.CALL: ChannelRule(upstream=False, qos=1, retain=False),
    # the server (re)connected, and whether the broker had kept its queue: if not, what
    # the units sent meanwhile may be lost, and they send again what it never confirmed
    Channel.SERVER: ChannelRule(upstream=False, qos=1, retain=False, per_unit=False),
}


class TopicError(ValueError):
    """A topic that is not one of ours, or names an invalid unit id."""


def valid_unit_id(unit_id: str) -> bool:
    return bool(_UNIT_ID.match(unit_id))


@dataclass(frozen=True)
class Topics:
    """Builds and parses topics under one root (configurable, default `fieldlink/v1`)."""

    root: str = DEFAULT_ROOT

    def to_all(self, channel: Channel) -> str:
        """A channel every unit hears (not one of a unit's own)."""
        if CHANNELS[channel].per_unit:
            raise TopicError(f"{channel.value} is a unit's own channel")
        return f"{self.root}/{channel.value}"

    def unit(self, unit_id: str, channel: Channel) -> str:
        if not CHANNELS[channel].per_unit:
            raise TopicError(f"{channel.value} is not a unit's own channel: use to_all")
        if not valid_unit_id(unit_id):
            raise TopicError(f"invalid unit id {unit_id!r}: use 1-64 of A-Z a-z 0-9 _ -")
        return f"{self.root}/units/{unit_id}/{channel.value}"

    def upstream_filters(self, channels: Iterable[Channel] | None = None) -> list[str]:
        """What the server subscribes to: every unit's upstream channels (or those given)."""
        wanted = set(channels) if channels is not None else set(CHANNELS)
        return [
            f"{self.root}/units/+/{c.value}"
            for c, rule in CHANNELS.items()
            if rule.upstream and c in wanted
        ]

    def parse(self, topic: str) -> tuple[str, Channel]:
        """Split a topic into (unit id, channel); raises TopicError for anything else."""
        prefix = f"{self.root}/units/"
        if not topic.startswith(prefix):
            raise TopicError(f"topic {topic!r} is not under {prefix!r}")
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 2:
            raise TopicError(f"topic {topic!r} is not {prefix}<unit>/<channel>")
        unit_id, name = parts
        if not valid_unit_id(unit_id):
            raise TopicError(f"topic {topic!r} names an invalid unit id")
        try:
            return unit_id, Channel(name)
        except ValueError:
            raise TopicError(f"topic {topic!r} has unknown channel {name!r}") from None
