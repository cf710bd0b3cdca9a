"""The order book in process, as microblog-api's TestConfig builds an app: a fresh store on a
temporary SQLite, a clock the test moves, and a notifier that records what would go out.
No broker, no server process, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server import orders
from server.config import Settings
from server.orders import OrderBook
from server.rules.arrival import ArrivalRule
from server.rules.dispatch import EtaModel, Rules
from server.rules.plans import load_plans
from server.state.live_state import LiveState, UnitState
from server.store import Post, Unit, create_unit, db, load_posts, open_database

T0 = 1_800_000_000.0


class Clock:
    """The book's time: starts at T0 and moves only when the test says."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Recorder:
    """What the book would send: to consoles, to agents, to terminals, to a call's unit."""

    sent: list[tuple[str, str, Any]] = field(default_factory=list)

    def console(self, event: str, data: Any) -> None:
        self.sent.append(("console", event, data))

    def order_to_agent(self, unit_id: str, order: dict[str, Any]) -> None:
        self.sent.append(("agent", unit_id, order))

    def order_to_terminals(
        self, unit_id: str, order: dict[str, Any], sid: str | None = None
    ) -> None:
        self.sent.append(("terminal", unit_id, order))

    def reporter(self, unit_id: str, call: dict[str, Any]) -> None:
        self.sent.append(("reporter", unit_id, call))

    def phone_command(self, unit_id: str, device: str, command: dict[str, Any]) -> None:
        self.sent.append(("phone", unit_id, command))

    def of(self, kind: str, key: str | None = None) -> list[Any]:
        return [data for k, e, data in self.sent if k == kind and (key is None or e == key)]


@dataclass
class Desk:
    """A fresh order book with what a test reads and moves: its live state, what it sent,
    its clock."""

    book: OrderBook
    live: LiveState
    notes: Recorder
    clock: Clock

    def add_unit(
        self,
        unit_id: str,
        kind: str = "patrol_car",
        at: tuple[float, float] | None = None,
        fix_age_s: float = 0.0,
        home_post: str | None = None,
    ) -> UnitState:
        """A provisioned unit, online, with a fix `fix_age_s` old at `at` (None: no fix)."""
        with db.atomic():
            create_unit(unit_id, kind, home_post=home_post)
            Unit.update(created_at=self.clock() - 86400).where(Unit.id == unit_id).execute()
        row = Unit.get_by_id(unit_id)
        unit = UnitState.from_row(row, online=True, last_heard=self.clock())
        if at is not None:
            unit.fix = {"ts": self.clock() - fix_age_s, "lat": at[0], "lon": at[1]}
        self.live.add(unit)
        return unit

    def add_post(self, post_id: str, lat: float, lon: float) -> None:
        Post.create(id=post_id, name=post_id, tier_min=1, lat=lat, lon=lon)
        self.book.use_posts(load_posts())


def order_book(tmp_path: Path, **settings: Any) -> Desk:
    """A fresh book; `settings` override the server's defaults (as FIELDLINK_* would)."""
    open_database(f"sqlite:///{tmp_path / 'book.db'}")
    s = Settings(**settings)
    clock = Clock()
    live = LiveState()
    notes = Recorder()
    book = OrderBook(
        live,
        notes,  # type: ignore[arg-type]
        load_plans(s.plans_file, s.categories(), s.ack_timeouts()),
        Rules(EtaModel(s.road_factor, s.speeds_ms()), s.position_stale_s, s.dispatch_policy),
        ArrivalRule(s.arrival_radius_m, s.arrival_dwell_s),
        categories=s.categories(),
        offline_after_s=s.offline_after_s,
        alarm_ack_s=s.alarm_ack_s,
        on_scene_limits_s=s.on_scene_limits_s(),
        clock=clock,
    )
    db.connect(reuse_if_open=True)
    orders.load(book, book.grids)
    return Desk(book, live, notes, clock)
