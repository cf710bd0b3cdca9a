"""The order book: incidents, alarms, orders and their acks (`context` says how the parts
share it). `load` is its start-up."""

from server.orders import arrival_watch, queries
from server.orders.context import OrderBook, OrderRefused, Shortlist
from server.rules.geo import GridMap
from server.store import Setting, load_posts

__all__ = ["OrderBook", "OrderRefused", "Shortlist", "load"]


def load(book: OrderBook, grids: GridMap) -> None:
    """Start-up: grids, posts, the duty level, the scenes of orders not yet reached, and the
    units whose call for help still has no place."""
    book.use_grids(grids)
    book.use_posts(load_posts())
    row = Setting.get_or_none(Setting.key == "duty_level")
    book.duty_level = row.value if row else "normal"
    for order, incident in queries.open_orders():
        arrival_watch.watch(book, order, incident)
    book.unplaced_calls = queries.units_with_unplaced_calls()
