"""A fake OSRM server over loopback HTTP: real `table` requests parsed, drive times from the
straight line (haversine x ROAD_FACTOR at SPEED_MS), and the ways a real one fails: slow,
HTTP errors, OSRM errors, garbage.

`python -m tests.osrm_fake --port 5000` serves one for trying the console by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from geodesy import distance_m

ROAD_FACTOR = 1.3
SPEED_MS = 10.0
MODES = ("ok", "slow", "error", "bad", "garbage")


class OsrmFake:
    def __init__(self, port: int = 0):
        self.mode = "ok"  # one of MODES, switchable while serving
        self.delay_s = 5.0  # how long "slow" holds an answer back
        # origin (lat, lon) rounded to 5 decimals -> drive seconds (None: no road)
        self.overrides: dict[tuple[float, float], float | None] = {}
        # when set, sent as-is with HTTP 200 in "ok" mode: for replies of the wrong shape
        self.reply: dict | None = None
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()  # wakes "slow" handlers so none outlives the fake
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects

            def do_GET(self) -> None:
                fake._answer(self)

            def log_message(self, *_: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True  # a handler still sleeping never holds up shutdown

            def handle_error(self, *_: object) -> None:
                pass  # a client that gave up closes its socket; that is expected here

        # port 0: the kernel picks a free port at bind time, so no race with other tests
        self.httpd = Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OsrmFake:
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        parts = url.path.split("/")  # /table/v1/{profile}/lon,lat;lon,lat
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if parts[1:3] != ["table", "v1"] or len(parts) != 5:
                raise ValueError(f"not a table request: {url.path}")
            points = [_lat_lon(p) for p in parts[4].split(";")]
            everyone = ";".join(map(str, range(len(points))))
            sources = [int(i) for i in query.get("sources", everyone).split(";")]
            dests = [int(i) for i in query.get("destinations", everyone).split(";")]
            if not all(0 <= i < len(points) for i in sources + dests):
                raise ValueError("source or destination index out of range")
        except ValueError as exc:
            return _send(handler, 400, {"code": "InvalidUrl", "message": str(exc)})
        with self._lock:
            self.requests.append(
                {
                    "path": url.path,
                    "query": url.query,
                    "profile": parts[3],
                    "points": points,
                    "sources": sources,
                    "destinations": dests,
                    "annotations": query.get("annotations"),
                    "client": handler.client_address,
                }
            )
        mode = self.mode
        if mode == "slow" and self._closing.wait(self.delay_s):
            return  # the fake is closing: drop the connection unanswered
        if mode == "error":
            return _send(handler, 500, {"code": "InternalError", "message": "worker died"})
        if mode == "bad":
            message = "Could not find a matching segment for any coordinate"
            return _send(handler, 200, {"code": "NoSegment", "message": message})
        if mode == "garbage":
            return _send(handler, 200, b"<html><body>502 proxy error</body></html>")
        if self.reply is not None:
            return _send(handler, 200, self.reply)
        durations, distances = [], []
        for s in sources:
            row_t: list[float | None] = []
            row_d: list[float | None] = []
            for d in dests:
                metres = distance_m(*points[s], *points[d]) * ROAD_FACTOR
                key = (round(points[s][0], 5), round(points[s][1], 5))
                seconds = self.overrides.get(key, metres / SPEED_MS)
                row_t.append(seconds)
                row_d.append(None if seconds is None else metres)
            durations.append(row_t)
            distances.append(row_d)
        _send(handler, 200, {"code": "Ok", "durations": durations, "distances": distances})


def _lat_lon(point: str) -> tuple[float, float]:
    lon, lat = map(float, point.split(","))  # OSRM's order on the wire is lon,lat
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"coordinate out of range: {point}")
    return lat, lon


def _send(handler: BaseHTTPRequestHandler, status: int, body: dict | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=UTF-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args()
    with OsrmFake(args.port) as fake:
        fake.mode = args.mode
        print(f"fake OSRM ({fake.mode}) at {fake.url}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
