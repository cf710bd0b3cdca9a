"""What every benchmark's command line and run share: the parser with `--quick`, the options
more than one benchmark takes, and the run itself (its folder, logging, clock and Ctrl-C)."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

ASYNC_MODES = ("threading", "gevent")


def parser(module: str, description: str, quick: str) -> argparse.ArgumentParser:
    """A benchmark's parser: `python -m {module}`, with `--quick` (`quick` says what it runs)."""
    made = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    made.add_argument("--quick", action="store_true", help=quick)
    return made


def listed(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list, each item one of `allowed`."""

    def parse(text: str) -> list[str]:
        items = [item for item in text.split(",") if item]
        for item in items:
            if item not in allowed:
                raise argparse.ArgumentTypeError(f"unknown {what} {item!r}")
        return items

    return parse


def at_least(
    kind: Callable[[str], float], low: float, above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a number of `kind` (int, float) >= `low`, or > `low` when `above`."""

    def parse(text: str) -> float:
        value = kind(text)
        if value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {low:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


POSITIVE_INT = at_least(int, 1)
POSITIVE = at_least(float, 0, above=True)
NOT_NEGATIVE = at_least(float, 0)


def add_run_options(options: argparse.ArgumentParser) -> None:
    """Where the run keeps its files, and how much it logs (see `Run`)."""
    options.add_argument("--workdir", type=Path, help="keep databases and logs here")
    options.add_argument("-v", "--verbose", action="store_true", help="log everything")


def add_units(
    options: argparse.ArgumentParser, default: int, what: str, rate: float | None = None
) -> None:
    """`--units`: how many units the load generator simulates; with `rate`, `--rate`: the
    fixes a second each sends."""
    options.add_argument("--units", type=POSITIVE_INT, default=default, help=f"{what} [{default}]")
    if rate is not None:
        options.add_argument(
            "--rate", type=POSITIVE, default=rate, help=f"fixes/s per unit [{rate:g}]"
        )


def add_modes(options: argparse.ArgumentParser) -> None:
    """`--modes`: the async modes to run the server in, one after the other."""
    options.add_argument(
        "--modes",
        type=listed(ASYNC_MODES, "async mode"),
        default=",".join(ASYNC_MODES),
        help="server async modes [threading,gevent]",
    )


def add_mode(options: argparse.ArgumentParser, flag: str, whose: str) -> None:
    """One async mode for the whole run, under `flag`."""
    options.add_argument(
        flag, default="threading", choices=ASYNC_MODES, help=f"{whose} async mode [threading]"
    )


def add_profile(options: argparse.ArgumentParser, during: str) -> None:
    options.add_argument(
        "--profile", action="store_true", help=f"py-spy the server {during} (py-spy in the venv)"
    )


def add_load_generator(options: argparse.ArgumentParser, drain: bool = False) -> None:
    """The load generator's processes and in-flight cap; with `drain`, how long to wait for
    the backlog it leaves."""
    options.add_argument(
        "--processes", type=POSITIVE_INT, default=2, help="publisher processes [2]"
    )
    options.add_argument(
        "--max-inflight", type=POSITIVE_INT, default=200, help="QoS 1 in flight per publisher [200]"
    )
    if drain:
        options.add_argument(
            "--drain-max",
            type=POSITIVE,
            default=40.0,
            help="longest wait for the backlog after the load stops, seconds [40]",
        )


def add_alarms(options: argparse.ArgumentParser, cars: int, panics: int, panic_rate: float) -> None:
    """Patrol cars with terminals, and the guard posts' panics they answer."""
    options.add_argument(
        "--cars", type=POSITIVE_INT, default=cars, help=f"patrol cars with terminals [{cars}]"
    )
    options.add_argument(
        "--posts", type=POSITIVE_INT, default=50, help="guard posts that panic [50]"
    )
    options.add_argument(
        "--panics", type=POSITIVE_INT, default=panics, help=f"panics to send [{panics}]"
    )
    options.add_argument(
        "--panic-rate",
        type=POSITIVE,
        default=panic_rate,
        help=f"panics per second [{panic_rate:g}]",
    )


class Run:
    """One run: its folder (`--workdir`, kept; else a new temporary one, removed at the end),
    logging by `-v`, and the clock its progress lines read.

    Measure inside `with Run(...)`: Ctrl-C ends the measuring there, and what was measured
    before it is still reported after the `with`.
    """

    def __init__(self, args: argparse.Namespace, name: str):
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        self.keep = args.workdir is not None
        self.workdir: Path = args.workdir or Path(
            tempfile.mkdtemp(prefix=f"fieldlink-bench-{name}-")
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> bool:
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if kind is KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return True
        return False

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def progress(self, text: str) -> None:
        print(f"  [{self.seconds():4.0f} s] {text}", flush=True)

    def took(self) -> str:
        """The report's last line: how long the whole run took."""
        return f"\n({self.seconds():.0f} s)"
