"""What the benchmarks' reports share: percentiles, plain-text tables, latency tables, the
verdict beside each target, machine facts, py-spy summaries."""

from __future__ import annotations

import logging
import math
import os
import platform
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99/max in milliseconds of latencies given in seconds."""
    ordered = sorted(v * 1000 for v in values_s)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain, aligned text table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def latency_table(
    columns: Sequence[str],
    rows: Iterable[tuple[Sequence[object], Sequence[float]]],
    stats: Sequence[str] = ("p50", "p90", "p99", "max"),
) -> str:
    """A table of latencies: each row its leading cells (under `columns`), then how many
    values it has and their `stats` in ms (see `summary_ms`; the values are in seconds)."""
    cells = []
    for lead, values in rows:
        summary = summary_ms(values)
        cells.append([*lead, summary["n"], *(summary[stat] for stat in stats)])
    return table([*columns, "n", *(f"{stat} ms" for stat in stats)], cells)


def met(ok: bool) -> str:
    """The verdict beside a target's figure."""
    return "met" if ok else "MISSED"


def print_profiles(profiles: Iterable[tuple[str, str]]) -> None:
    """Each py-spy summary recorded, under (what the server did meanwhile, summary)."""
    for during, profile in profiles:
        if profile:
            print(f"\npy-spy of the server, {during}:\n{profile}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_facts() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def summarize_py_spy(raw: Path, top: int = 12) -> str:
    """The heaviest functions of a py-spy `--format raw` (collapsed stacks) file.

    "self" counts samples where the function is the innermost frame, "incl." samples where it
    is anywhere on the stack; idle frames (waiting on a lock, a socket or a queue) are kept
    apart so busy work stands out. Percentages are of all samples of all threads.
    """
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = [_frame(f) for f in frames[1:]]
        if names:
            self_counts[names[-1]] += count
        for name in set(names):
            incl_counts[name] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; per thread:"]
    lines += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common(8)]
    lines.append("top self:")
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in self_counts.most_common(top)]
    lines.append("top inclusive (fieldlink and library code):")
    shown = 0
    for name, c in incl_counts.most_common():
        if "threading.py" in name or "<module>" in name or "_bootstrap" in name:
            continue
        lines.append(f"  {100 * c / total:5.1f}%  {name}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


def _frame(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (file.py)`; line numbers would split counts."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name.strip()} ({short})"
