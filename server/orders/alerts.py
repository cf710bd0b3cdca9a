"""Alerts a dispatcher works through (raised where each happens; a unit silent on a call or
long on scene, here): each kept in the store until one acknowledges it (or its incident is
closed), in its incident's timeline, and pushed to every console when raised and when
settled, so every console, and one that reloads, shows the same list."""

from __future__ import annotations

import json
import logging
from typing import Any

from server.orders import queries
from server.orders.context import OrderBook, OrderRefused
from server.rules.lifecycle import on_scene_too_long
from server.rules.refusals import refusal
from server.store import Alert, db, record_event, save

log = logging.getLogger(__name__)

OPEN_SHOWN = 500  # the newest open ones; more is no list a dispatcher reads


def public(row: Alert) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "incident_id": row.incident_id,
        "unit_id": row.unit_id,
        "order_id": row.order_id,
        "message": row.message,
        "refs": json.loads(row.refs),
        "raised_at": row.raised_at,
        "acknowledged_at": row.acknowledged_at,
        "acknowledged_by": row.acknowledged_by,
    }


def raise_alert(
    book: OrderBook,
    kind: str,
    incident_id: str | None,
    message: str,
    event: str | None = None,
    pushed: dict[str, Any] | None = None,
    **refs: Any,
) -> dict[str, Any]:
    """Keep it, put it in the timeline (as `event`, its kind unless named) and on every
    console (with `pushed` beside it there); `refs` are what a console words it from."""
    log.warning("incident %s: %s", incident_id, message)
    unit_id, order_id = refs.pop("unit_id", None), refs.pop("order_id", None)
    row = Alert(
        kind=kind,
        incident_id=incident_id,
        unit_id=unit_id,
        order_id=order_id,
        message=message,
        refs=json.dumps(refs),
        raised_at=book.clock(),
    )
    with db.atomic():
        row.save()
        record_event(
            "dispatch",
            event or kind,
            incident_id=incident_id,
            unit_id=unit_id,
            order_id=order_id,
            message=message,
            alert_id=row.id,
            **refs,
        )
    shown = public(row)
    book.notices.console("alert", {**shown, **(pushed or {})})
    return shown


def open_alerts() -> list[dict[str, Any]]:
    """Those no dispatcher has acknowledged, oldest first."""
    rows = (
        Alert.select()
        .where(Alert.acknowledged_at.is_null())
        .order_by(Alert.id.desc())
        .limit(OPEN_SHOWN)
    )
    return [public(r) for r in reversed(list(rows))]


def acknowledge(book: OrderBook, ids: list[int], actor: str) -> list[dict[str, Any]]:
    """A dispatcher saw to them: they leave every console's list; the timeline says who."""
    rows = list(Alert.select().where(Alert.id.in_(ids), Alert.acknowledged_at.is_null()))
    if not rows and not Alert.select().where(Alert.id.in_(ids)).exists():
        raise OrderRefused(refusal("no_alert", alert=ids[0]), 404)
    return _settle(book, rows, actor, "alert_acknowledged")


def settle_incident(book: OrderBook, incident_id: str, actor: str) -> None:
    """A closed incident's alerts are done with: closing it was seeing to them."""
    rows = list(
        Alert.select().where(Alert.incident_id == incident_id, Alert.acknowledged_at.is_null())
    )
    _settle(book, rows, actor, "alert_settled")


def _settle(book: OrderBook, rows: list[Alert], actor: str, event: str) -> list[dict[str, Any]]:
    now = book.clock()
    with db.atomic():
        for row in rows:
            row.acknowledged_at, row.acknowledged_by = now, actor
            save(row)
            record_event(
                actor,
                event,
                incident_id=row.incident_id,
                unit_id=row.unit_id,
                alert_id=row.id,
                alert=row.kind,
                waited_s=round(now - row.raised_at, 1),
            )
    done = [public(r) for r in rows]
    if done:
        book.notices.console("alerts_acknowledged", {"alerts": done, "by": actor, "at": now})
    return done


def unit_silent(book: OrderBook, unit_id: str, why: str) -> None:
    """A unit went offline while it holds orders: each of its calls may have lost it."""
    for order, incident in queries.open_orders(unit_id):
        raise_alert(
            book,
            "unit_silent",
            incident.id,
            f"unit {unit_id} went silent ({why or 'offline'}) while on this incident",
            unit_id=unit_id,
            order_id=order.id,
            why=why,
        )


def on_scene_overdue(book: OrderBook, now: float) -> None:
    """Units on scene past their call's category's limit: each alerted once per order."""
    since = now - min(book.on_scene_limits_s.values())
    for order, incident in queries.orders_on_scene_since(since, unless_alerted="on_scene_long"):
        arrived = order.on_scene_at or now  # on scene since `since` or before: set
        limit = on_scene_too_long(incident.category, arrived, now, book.on_scene_limits_s)
        if limit is None:
            continue
        minutes = round((now - arrived) / 60)
        raise_alert(
            book,
            "on_scene_long",
            incident.id,
            f"unit {order.unit_id} on scene for {minutes} min, past the {incident.category} "
            f"limit of {limit / 60:.0f} min",
            unit_id=order.unit_id,
            order_id=order.id,
            minutes=minutes,
            limit_min=round(limit / 60),
        )
