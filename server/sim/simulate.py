"""`fieldlink simulate`: a city's day through the real broker and server, faster than life.

For each dispatch policy asked for, one run: a broker, the street router, the real server
(its clock `speedup` times faster, the policy set) and a fleet of patrol cars and guard kiosks
on the same streets. The day's calls (`city_day.day_plan`, the same for every policy) are
played as they come: a citizen's call becomes an incident, and after the call-taker's time its
plan is sent; a panic is raised at a kiosk over MQTT. The command centre calls back and closes
what was resolved. A progress bar follows the simulated clock; at the end the period's figures
come from `/api/v1/kpis`, side by side when several policies ran.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
import socketio
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from server.rules.dispatch import POLICIES
from server.runtime.clock import Clock
from server.sim.city_day import SUMMARIES, Call, day_plan, expected_total
from server.sim.demo import Demo, DemoError, provision, stopped_by_signals
from server.sim.local_broker import free_port
from server.sim.simulator import City, Fleet, Pace, layout_fleet
from server.sim.street_router import StreetRouter

log = logging.getLogger(__name__)

CAR_TICK_S = 5.0  # simulated seconds between a car's fixes
POST_REPORT_S = 30.0  # a standing kiosk's report interval
SCENE_S = (600.0, 2400.0)  # an officer's time on scene: 10-40 minutes
FOLLOWUP_SHARE = 0.85  # resolved incidents the command centre calls back
DRAIN_S = 3600.0  # after the period, how long calls still open may take to finish
FOLLOWUP_OUTCOMES, FOLLOWUP_WEIGHTS = ("satisfied", "unsatisfied", "no_answer"), (6, 1, 2)
POLL_S = 1.0  # wall seconds between looks at what was resolved
PACE_CHECK_S = 15.0  # wall seconds between looks at whether the server keeps up
LINE_EVERY_S = 10.0  # wall seconds between progress lines when the output is not a terminal


@dataclass(frozen=True)
class DayOptions:
    grids: int = 51
    cars_per_grid: int = 5
    posts: int = 200
    start: str = "00:00"  # local time of today in the command centre's zone
    hours: float = 24.0
    speedup: float = 20.0
    calls_per_day: float = 1200.0
    panic_share: float = 0.1
    seed: int = 1
    async_mode: str | None = None


def check_options(options: DayOptions, policies: list[str]) -> None:
    problems = []
    if options.grids < 1 or options.cars_per_grid < 1 or options.posts < 0:
        problems.append("--grids and --cars-per-grid must be 1 or more, --posts 0 or more")
    if not 0 < options.hours <= 24 * 7:
        problems.append("--hours must be above 0 and at most a week (168)")
    if not 1 <= options.speedup <= 600:
        problems.append("--speedup must be between 1 and 600")
    if options.calls_per_day <= 0 or not 0 <= options.panic_share <= 1:
        problems.append("--calls-per-day must be above 0 and --panic-share between 0 and 1")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        problems.append(f"unknown policy {', '.join(unknown)}: use {', '.join(POLICIES)} or all")
    try:
        datetime.strptime(options.start, "%H:%M")
    except ValueError:
        problems.append(f"--start {options.start!r}: use HH:MM, e.g. 18:00")
    if problems:
        raise DemoError("; ".join(problems))


def period_start(start: str, tz: ZoneInfo, today: datetime | None = None) -> float:
    """`start` (HH:MM) today in the command centre's zone, as epoch seconds."""
    hour, minute = (int(v) for v in start.split(":"))
    day = today or datetime.now(tz)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def clock_for(start: float, speedup: float, lead_wall_s: float, wall_now: float) -> Clock:
    """A clock reading `start` `lead_wall_s` wall seconds from `wall_now`, `speedup` x fast.

    With anchor A, simulated = A + (wall - A) x speedup; solved for A at the start.
    """
    if speedup == 1:
        return Clock(1.0, 0.0)  # wall time itself: the period starts when it starts
    wall_start = wall_now + lead_wall_s
    return Clock(speedup, (start - wall_start * speedup) / (1 - speedup))


def run_simulation(options: DayOptions, policies: list[str], json_out: Path | None) -> int:
    """Every policy on the same day; 0 when all ran, 1 on a failure, 2 on bad options."""
    console = Console(highlight=False)
    try:
        check_options(options, policies)
    except DemoError as exc:
        console.print(f"[red]fieldlink simulate:[/] {exc}")
        return 2
    results: dict[str, dict[str, Any]] = {}
    with stopped_by_signals() as stop:
        try:
            for policy in policies:
                if stop.is_set():
                    break
                with ExitStack() as stack:
                    results[policy] = CityDay(console, stack, stop, options, policy).run()
        except DemoError as exc:
            console.print(f"[red]fieldlink simulate failed:[/] {exc}")
            return 1
    if results:
        console.print(figures_table(results))
    if json_out is not None and results:
        json_out.write_text(json.dumps({"options": asdict(options), "runs": results}, indent=2))
        console.print(f"figures written to {json_out}")
    return 0 if len(results) == len(policies) else 1


class Agenda:
    """What the command centre has to do, by simulated time; ties in the order added."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, str, Any]] = []
        self.order = itertools.count()

    def add(self, at: float, action: str, subject: Any) -> None:
        heapq.heappush(self.heap, (at, next(self.order), action, subject))

    def due(self, now: float) -> Iterator[tuple[str, Any]]:
        while self.heap and self.heap[0][0] <= now:
            _, _, action, subject = heapq.heappop(self.heap)
            yield action, subject


class CityDay:
    """One policy's run: what it started (stops on `stack`) and the command centre's work."""

    def __init__(
        self,
        console: Console,
        stack: ExitStack,
        stop: threading.Event,
        options: DayOptions,
        policy: str,
    ) -> None:
        self.console = console
        self.stack = stack
        self.stop = stop
        self.options = options
        self.policy = policy
        self.city = City.of_grids(options.grids)
        self.tz = ZoneInfo(_timezone())
        self.start = period_start(options.start, self.tz)
        self.end = self.start + options.hours * 3600
        self.rig = Demo(console, stack, stop, free_port(), options.async_mode, self.city)
        self.http = requests.Session()
        self.warned, self.paced, self.behind = False, time.monotonic(), 0
        self.rng = random.Random(options.seed)  # the command centre's own choices
        self.server_errors = 0
        self.played = 0
        self.stack.callback(self.http.close)

    # -- setting up ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        o = self.options
        rng = random.Random(o.seed)
        specs = layout_fleet(self.city, o.grids * o.cars_per_grid, o.posts, rng)
        self.posts = {s.unit_id: s for s in specs if s.kind == "guard_post"}
        plan = day_plan(
            list(self.city.zones()),
            {p: s.grid for p, s in self.posts.items()},
            self.start,
            o.hours,
            o.calls_per_day,
            o.panic_share,
            self.tz,
            o.seed,
        )
        self.console.rule(f"[bold]policy: {self.policy}[/]")
        # time to set up, in wall seconds: the clock reaches the start when the fleet is ready
        lead = 8 + len(specs) / 40
        self.clock = clock_for(self.start, o.speedup, lead, time.time())
        with self.console.status("database, broker, street router, server, fleet") as status:
            tokens, desk = provision(self.rig.db_url, self.city, specs)
            self.http.headers["Authorization"] = f"Bearer {desk.api_token}"
            broker = self.rig.start_broker(os.environ.get("FIELDLINK_DEMO_BROKER") or "auto")
            router = StreetRouter(self.city).start()
            self.stack.callback(router.stop)
            self.rig.start_server(broker, self.server_env(router.url))
            self.rig.wait_ready()
            status.update(f"connecting {len(specs)} units and their terminals")
            pace = Pace(self.clock, CAR_TICK_S, POST_REPORT_S, SCENE_S)
            self.fleet = Fleet(
                self.city, specs, tokens, broker.url, broker.protocol, self.rig.url, 0, o.seed, pace
            )
            self.stack.callback(self.fleet.stop)
            try:
                self.fleet.start()
            except socketio.exceptions.ConnectionError as exc:
                raise DemoError(f"the simulated terminals could not connect: {exc}") from None
        late = self.clock.now() - self.start
        if late > 0:
            self.console.print(
                f"[yellow]set-up took {late / o.speedup:.0f} wall s longer than planned: the "
                f"first {late / 60:.0f} simulated minutes of calls come at once[/]"
            )
        expected = expected_total(self.start, o.hours, o.calls_per_day, self.tz)
        self.console.print(
            f"{len(plan)} calls ({expected:.0f} expected) over {o.hours:g} h "
            f"from {self._hhmm(self.start)}, {o.speedup:g}x; "
            f"{o.grids} grids, {len(self.fleet.cars)} cars, {len(self.posts)} guard posts; "
            f"console {self.rig.url}/"
        )
        self.play(plan)
        figures = self.figures()
        if self.server_errors:  # the run's folder goes with it: keep what the server said
            kept = Path(f"fieldlink-simulate-{self.policy}-server.log").resolve()
            shutil.copyfile(self.rig.server_log, kept)
            self.console.print(
                f"[red]the server answered {self.server_errors} request(s) with an error; "
                f"its log is kept at {kept}[/]"
            )
        return {**figures, "calls": len(plan), "server_errors": self.server_errors}

    def server_env(self, router_url: str) -> dict[str, str]:
        o = self.options
        return {
            "FIELDLINK_CLOCK_SPEEDUP": repr(o.speedup),
            "FIELDLINK_CLOCK_ANCHOR": repr(self.clock.anchor),
            "FIELDLINK_DISPATCH_POLICY": self.policy,
            "FIELDLINK_OSRM_URL": router_url,
            # ack deadlines checked every 5 simulated seconds
            "FIELDLINK_TIMER_TICK_S": repr(max(0.05, 5 / o.speedup)),
            "FIELDLINK_TIMEZONE": self.tz.key,
        }

    # -- the day ------------------------------------------------------------------------
    def play(self, plan: list[Call]) -> None:
        """The command centre's day: calls as they come, plans after the call-taking,
        call-backs and closing after resolution; until every call is handled."""
        agenda = Agenda()
        for call in plan:
            agenda.add(call.at, "call", call)
        seen: set[str] = set()
        last_poll = last_line = 0.0
        open_now, settled = 0, False
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TextColumn("{task.fields[calls]}"),
            TextColumn("{task.fields[open]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(
                self.policy, total=self.end - self.start, clock="", calls="", open=""
            )
            while not self.stop.is_set() and not settled and self.clock.now() < self.end + DRAIN_S:
                self.rig.check_server()
                now = self.clock.now()
                for action, subject in agenda.due(now):
                    self.act(agenda, action, subject)
                if time.monotonic() - last_poll >= POLL_S:
                    last_poll = time.monotonic()
                    open_now, resolved = self.look()
                    self.check_pace()
                    for incident in resolved:
                        if incident["id"] not in seen:
                            seen.add(incident["id"])
                            agenda.add(self.wrap_up_at(incident), "wrap_up", incident["id"])
                    # over when every call is an incident (a panic takes a moment) and handled
                    settled = now >= self.end and open_now == 0 and self.recorded() >= self.played
                fields: dict[str, Any] = {
                    "clock": self._hhmm(now),
                    "calls": f"calls {self.played}/{len(plan)}",
                    "open": f"open {open_now}",
                }
                progress.update(task, completed=min(now, self.end) - self.start, **fields)
                if not self.console.is_terminal and time.monotonic() - last_line >= LINE_EVERY_S:
                    last_line = time.monotonic()  # a log file gets a line now and then instead
                    self.console.print(f"{self.policy}: " + " · ".join(fields.values()))
                time.sleep(0.05)

    def act(self, agenda: Agenda, action: str, subject: Any) -> None:
        if action == "call":
            self.played += 1
            incident_id = self.raise_call(subject)
            if incident_id:  # a citizen's call: its plan once the call is taken
                agenda.add(subject.at + subject.taking_s, "plan", incident_id)
            return
        path = f"/api/v1/incidents/{subject}"
        if action == "plan":
            self.post(f"{path}/plan", {"by": "dispatcher"})
        elif action == "wrap_up":
            if self.rng.random() < FOLLOWUP_SHARE:
                outcome = self.rng.choices(FOLLOWUP_OUTCOMES, FOLLOWUP_WEIGHTS)[0]
                self.post(f"{path}/followup", {"outcome": outcome, "by": "dispatcher"})
            self.post(f"{path}/close", {"disposition": "handled on scene", "by": "dispatcher"})

    def raise_call(self, call: Call) -> str | None:
        if call.kind == "panic":
            self.fleet.raise_panic(call.post)
            return None
        zone = self.city.zones()[call.grid]
        x = (zone.lo[0] + call.point[0] * (zone.hi[0] - zone.lo[0])) * self.city.block_m
        y = (zone.lo[1] + call.point[1] * (zone.hi[1] - zone.lo[1])) * self.city.block_m
        lat, lon = self.city.latlon(x, y)
        body = {
            "category": call.category,
            "priority": call.priority,
            "location": {"lat": lat, "lon": lon, "address": f"grid {call.grid}"},
            "summary": SUMMARIES[call.category],
            "by": "call-taker",
        }
        answer = self.post("/api/v1/incidents", body)
        return answer.get("id") if answer else None

    def wrap_up_at(self, incident: dict[str, Any]) -> float:
        """When the command centre calls back and closes: 5-60 simulated minutes on."""
        return incident["resolved_at"] + self.rng.uniform(300, 3600)

    def check_pace(self) -> None:
        """Say so, once, when the server sees connected units as offline: it is not keeping
        up with the speed-up (their fixes wait in the broker), and the figures would lie."""
        if self.warned or time.monotonic() - self.paced < PACE_CHECK_S:
            return
        self.paced = time.monotonic()
        units = self.get("/api/v1/units", {}) or []
        offline = sum(1 for u in units if not u["online"])
        self.behind = self.behind + 1 if units and offline > 0.05 * len(units) else 0
        if self.behind >= 2:  # twice in a row: not the units still coming online at the start
            self.warned = True
            self.console.print(
                f"[red]{offline} of {len(units)} units look offline to the server: it is not "
                f"keeping up with {self.options.speedup:g}x on this machine, so the figures "
                "will be wrong. Stop (Ctrl-C) and run with a lower --speedup.[/]"
            )

    def look(self) -> tuple[int, list[dict[str, Any]]]:
        """How many incidents are still open (not resolved), and those resolved."""
        still = self.get("/api/v1/incidents", {"state": "open", "limit": 1000}) or []
        return (
            sum(1 for i in still if i["state"] in ("new", "dispatched", "on_scene")),
            [i for i in still if i["state"] == "resolved"],
        )

    def recorded(self) -> int:
        """Incidents the server has made so far."""
        kpis = self.get("/api/v1/kpis", {"since": self.start, "until": self.clock.now() + 1})
        return (kpis or {}).get("all", {}).get("incidents", 0)

    def figures(self) -> dict[str, Any]:
        # every incident of the run: a call near the end may be recorded just past it
        until = max(self.end, self.clock.now())
        kpis = self.get("/api/v1/kpis", {"since": self.start, "until": until}) or {}
        stats = self.fleet.stats
        return {
            "policy": self.policy,
            "kpis": {k: v for k, v in kpis.items() if k not in ("arrival_histogram", "daily")},
            "fleet": {"acks": stats.acks, "declines": stats.declines, "panics": stats.panics},
        }

    # -- HTTP ---------------------------------------------------------------------------
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("POST", path, json=body)

    def get(self, path: str, params: dict[str, Any]) -> Any:
        return self._call("GET", path, params=params)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer, or None when the server refused (logged: the day goes on)."""
        try:
            reply = self.http.request(method, self.rig.url + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            log.warning("%s %s: %s", method, path, exc)
            return None
        if reply.status_code >= 400:
            log.warning("%s %s refused (%s): %s", method, path, reply.status_code, reply.text[:200])
            self.server_errors += reply.status_code >= 500
            return None
        return reply.json()

    def _hhmm(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).strftime("%a %H:%M")


def _timezone() -> str:
    from server.config import Settings

    return Settings.from_env().timezone


FIGURES = (
    ("incidents", lambda k: k["incidents"]),
    ("call → dispatch, median", lambda k: _s(k["call_to_dispatch"]["median_s"])),
    ("dispatch → accept, median", lambda k: _s(k["dispatch_to_acknowledge"]["median_s"])),
    ("dispatch → arrival, mean", lambda k: _s(k["dispatch_to_arrival"]["mean_s"])),
    ("dispatch → arrival, median", lambda k: _s(k["dispatch_to_arrival"]["median_s"])),
    ("dispatch → arrival, p90", lambda k: _s(k["dispatch_to_arrival"]["p90_s"])),
    ("arrived within 1 min", lambda k: _rate(k["arrived_within"]["1min"])),
    ("arrived within 3 min", lambda k: _rate(k["arrived_within"]["3min"])),
    ("arrived within 5 min", lambda k: _rate(k["arrived_within"]["5min"])),
    ("first response", lambda k: _rate(k["first_response_rate"])),
    ("resolved on scene", lambda k: _rate(k["on_scene_resolution_rate"])),
    ("closed the same day", lambda k: _rate(k["same_day_closure_rate"])),
    ("followed up", lambda k: _rate(k["followups_done"])),
)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _rate(figure: dict[str, Any]) -> str:
    return "-" if figure["rate"] is None else f"{figure['rate']:.1%}"


def figures_table(results: dict[str, dict[str, Any]]) -> Table:
    """The period's figures, one column per policy (min:sec for times)."""
    table = Table(title="The day's figures", title_justify="left")
    table.add_column("figure")
    for policy in results:
        table.add_column(policy, justify="right")
    table.add_row("calls played", *(str(run.get("calls", "-")) for run in results.values()))
    for name, read in FIGURES:
        row = []
        for run in results.values():
            all_ = run["kpis"].get("all")
            row.append("-" if not all_ else str(read(all_)))
        table.add_row(name, *row)
    return table
