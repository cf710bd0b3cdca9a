"""Drive times on the simulated city's streets, served as OSRM serves them (`table` API).

The simulated cars drive the street lattice, so the true drive is along the streets (east-west
plus north-south), not the straight line. Serving it the way OSRM does lets the real server
ask it through `FIELDLINK_OSRM_URL` exactly as it would ask OSRM over a real city's map.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from server.sim.simulator import City

log = logging.getLogger(__name__)

MEAN_SPEED_MS = 11.0  # the simulated cars' mean street speed


def street_legs(
    city: City, origins: Sequence[tuple[float, float]], dest: tuple[float, float]
) -> list[tuple[float, float]]:
    """(seconds, metres) from each origin (lat, lon) to the intersection nearest `dest`."""
    goal = city.xy(city.nearest_node(*dest))
    legs = []
    for lat, lon in origins:
        x, y = city.to_xy(lat, lon)
        metres = abs(x - goal[0]) + abs(y - goal[1])
        legs.append((round(metres / MEAN_SPEED_MS, 1), round(metres, 1)))
    return legs


def parse_table(path: str, query: str) -> tuple[list[tuple[float, float]], list[int], int]:
    """Points (lat, lon), source indexes and the destination index of a 1-destination table.

    Raises ValueError with OSRM's wording for anything else.
    """
    parts = path.strip("/").split("/")
    if len(parts) != 4 or parts[:2] != ["table", "v1"]:
        raise ValueError("URL is not /table/v1/{profile}/{coordinates}")
    points = []
    for pair in parts[3].split(";"):
        lon, lat = (float(v) for v in pair.split(","))
        points.append((lat, lon))
    args = parse_qs(query)
    sources = [int(i) for i in args.get("sources", [""])[0].split(";") if i]
    destinations = [int(i) for i in args.get("destinations", [""])[0].split(";") if i]
    if len(destinations) != 1 or not all(0 <= i < len(points) for i in sources + destinations):
        raise ValueError("one destination and sources within the coordinates are required")
    return points, sources, destinations[0]


class StreetRouter:
    """A small HTTP server on loopback answering OSRM `table` requests for `city`."""

    def __init__(self, city: City, host: str = "127.0.0.1", port: int = 0) -> None:
        router = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                try:
                    points, sources, dest = parse_table(url.path, url.query)
                except ValueError as exc:
                    self._answer(400, {"code": "InvalidQuery", "message": str(exc)})
                    return
                legs = street_legs(router.city, [points[i] for i in sources], points[dest])
                self._answer(
                    200,
                    {
                        "code": "Ok",
                        "durations": [[t] for t, _ in legs],
                        "distances": [[d] for _, d in legs],
                    },
                )

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args) -> None:
                log.debug("street router: " + fmt, *args)

        self.city = city
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> StreetRouter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
