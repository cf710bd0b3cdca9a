"""What the agent's outbox writes to the Pi's SD card in a day at 1 Hz, with the default settings.

The outbox is driven as the publisher drives it on a good link: each second a fix goes in,
the broker's PUBACK comes back, then the server's receipt; every 30 s a health message
(its PUBACK deletes it). Measured by the kernel's count of bytes this process sent to the
block device (/proc/self/io write_bytes: WAL frames, checkpoints and the file system's
journal), and the syscall bytes (wchar). Beside it, in the same run and on the same disk,
the floor any store that keeps each fix through a power cut pays: a line per fix appended to
a file and fdatasync'd.

    python -m bench.card_wear            # an hour of 1 Hz (3,600 fixes), as fast as it goes
    python -m bench.card_wear --quick    # 10 minutes' worth

The file must be on a real disk (not tmpfs, which writes nothing to a device): --workdir.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bench.cli import POSITIVE_INT, Run, add_run_options, parser
from bench.report import machine_facts, met, table
from edge_agent.config import HealthSettings, OutboxSettings
from edge_agent.outbox import Outbox, Uplink
from wire import Channel, Topics

DAY_S = 86400
START = 1_700_000_000.0
# a 32 GB card of common TLC flash is good for ~1,000 writes of each cell (vendors rate
# 500-3,000); wear levelling spreads writes over the whole card, but a card without a DRAM
# cache programs whole flash pages for small synced writes: ~10x what the host sent
CARD_BYTES = 32e9
CELL_WRITES = 1000
AMPLIFICATION = 10
TARGET_YEARS = 10


def device_bytes() -> tuple[int, int]:
    """(bytes this process sent to a block device, bytes it passed to write calls)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"]), int(fields["wchar"])


def measured(work: Callable[[], None]) -> tuple[int, int]:
    before = device_bytes()
    work()
    after = device_bytes()
    return after[0] - before[0], after[1] - before[1]


def fix(second: int) -> dict[str, float | int]:
    return {
        "ts": START + second,
        "lat": 60.17 + second * 1e-5,
        "lon": 24.94,
        "speed": 11.0,
        "heading": 90.0,
        "acc": 4.0,
        "mode": 3,
    }


def outbox_day(path: Path, seconds: int) -> Callable[[], None]:
    health_every = int(HealthSettings().interval_s)
    outbox = Outbox(path, OutboxSettings().max_rows)
    uplink = Uplink(outbox, "car-12", Topics())

    def run() -> None:
        for second in range(seconds):
            row = uplink.send(Channel.POSITION, fix(second))
            outbox.acknowledged(row)
            outbox.confirm({"ts": START + second, "positions": START + second})
            if second % health_every == 0:
                report = {"ts": START + second, "fix_mode": 3, "sats": 9, "outbox": 1}
                outbox.acknowledged(
                    uplink.send(Channel.HEALTH, {**report, "uptime_s": float(second)})
                )
        os.sync()  # what the page cache still holds counts too
        outbox.close()

    return run


def append_floor(path: Path, seconds: int) -> Callable[[], None]:
    def run() -> None:
        with path.open("ab") as log:
            for second in range(seconds):
                log.write(b"%.3f,60.17,24.94,11.0,90.0,4.0,3\n" % (START + second))
                log.flush()
                os.fdatasync(log.fileno())
        os.sync()

    return run


def per_day(written: int, seconds: int) -> str:
    return f"{written / seconds * DAY_S / 1e6:,.0f} MB"


def card_years(written: int, seconds: int) -> float:
    daily = written / seconds * DAY_S * AMPLIFICATION
    return CARD_BYTES * CELL_WRITES / daily / 365


def main() -> None:
    options = parser(__name__, "SD card writes of the agent's outbox at 1 Hz", "10 minutes' worth")
    options.add_argument(
        "--seconds", type=POSITIVE_INT, default=3600, help="seconds of 1 Hz to simulate [3600]"
    )
    add_run_options(options)
    args = options.parse_args()
    seconds = 600 if args.quick else args.seconds
    with Run(args, "card-wear") as run:
        run.progress(f"the outbox, {seconds} fixes")
        ours = measured(outbox_day(run.workdir / "outbox.db", seconds))
        run.progress(f"the floor, {seconds} appended lines")
        floor = measured(append_floor(run.workdir / "fixes.log", seconds))
    print(machine_facts())
    print(
        f"\n{seconds} s of 1 Hz fixes; card years: a {CARD_BYTES / 1e9:.0f} GB card,"
        f" {CELL_WRITES} writes a cell, {AMPLIFICATION}x write amplification, nothing else"
        " writing\n"
    )
    stores = (("fieldlink outbox", ours), ("floor: append + fdatasync", floor))
    rows = [
        (
            name,
            f"{device / seconds / 1024:.1f} KiB",
            per_day(device, seconds),
            f"{calls / seconds / 1024:.1f} KiB",
            f"{card_years(device, seconds):,.1f}",
        )
        for name, (device, calls) in stores
    ]
    print(
        table(["store", "device bytes per fix", "per day", "write() per fix", "card years"], rows)
    )
    years = card_years(ours[0], seconds)
    print(
        f"\ntarget: the outbox alone wears a card out in >= {TARGET_YEARS} years:"
        f" {years:.1f} {met(years >= TARGET_YEARS)}"
    )
    print(run.took())


if __name__ == "__main__":
    main()
