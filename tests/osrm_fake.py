"""A fake OSRM server over loopback HTTP: real `table` requests parsed, drive times from the
straight line, and the ways a real one fails (slow, HTTP errors, OSRM errors, garbage).

`python -m tests.osrm_fake --port 5000` serves one for trying the console by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from server.broker import free_port
from server.dispatch import distance_m

ROAD_FACTOR = 1.3
SPEED_MS = 10.0


class OsrmFake:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.mode = "ok"  # ok, slow, error, bad, garbage
        self.delay_s = 5.0
        # origin (lat, lon) rounded to 5 decimals -> drive seconds (None: no road)
        self.overrides: dict[tuple[float, float], float | None] = {}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.answer(self)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OsrmFake:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        parts = url.path.split("/")  # /table/v1/driving/lon,lat;lon,lat
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        points = [tuple(map(float, p.split(",")))[::-1] for p in parts[4].split(";")]
        sources = [int(i) for i in query["sources"].split(";")]
        dests = [int(i) for i in query["destinations"].split(";")]
        with self._lock:
            self.requests.append({"points": points, "sources": sources, "destinations": dests})
        if self.mode == "slow":
            time.sleep(self.delay_s)
        if self.mode == "error":
            return self._send(handler, 500, {"code": "InternalError", "message": "worker died"})
        if self.mode == "bad":
            return self._send(
                handler,
                400,
                {"code": "NoSegment", "message": "Could not find a matching segment"},
            )
        if self.mode == "garbage":
            return self._send(handler, 200, b"<html>proxy error</html>")
        durations, distances = [], []
        for s in sources:
            row_t, row_d = [], []
            for d in dests:
                metres = distance_m(*points[s], *points[d]) * ROAD_FACTOR
                key = (round(points[s][0], 5), round(points[s][1], 5))
                seconds = self.overrides.get(key, metres / SPEED_MS)
                row_t.append(seconds)
                row_d.append(None if seconds is None else metres)
            durations.append(row_t)
            distances.append(row_d)
        self._send(handler, 200, {"code": "Ok", "durations": durations, "distances": distances})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    with OsrmFake(parser.parse_args().port) as fake:
        print(f"fake OSRM at {fake.url}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
