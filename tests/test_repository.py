"""The repository is self-contained: a clone runs its tests and benchmarks with nothing else."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a relative path that may climb: resolved against the file's folder, it must stay inside
RELATIVE = re.compile(r"(?:\.\./)+[\w.-]*")
# paths that only exist on one person's machine
ABSOLUTE = re.compile(r"(?<![\w.])/(?:home|root|Users|work)/[\w.-]")
# the Python spellings of "a folder above this file": the root's parent, or parents[N]
ROOT_PARENT = re.compile(r"\bROOT\.parent\b")
PARENTS = re.compile(r"__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def tracked_text_files() -> list[Path]:
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    paths = [ROOT / name for name in listed if name]
    return [p for p in paths if p.is_file() and p != Path(__file__).resolve() and is_text(p)]


def is_text(path: Path) -> bool:
    return b"\0" not in path.read_bytes()[:8192]


def inside(path: Path) -> bool:
    return path == ROOT or ROOT in path.parents


def climbs_out(path: Path, text: str) -> list[str]:
    found = [m for m in RELATIVE.findall(text) if not inside((path.parent / m).resolve())]
    found += ABSOLUTE.findall(text)
    if path.suffix == ".py":
        found += ROOT_PARENT.findall(text)
        found += [
            f"parents[{n}]"
            for n in PARENTS.findall(text)
            if int(n) >= len(path.parents) or not inside(path.parents[int(n)])
        ]
    return found


def test_nothing_in_the_project_reads_outside_its_own_tree() -> None:
    files = tracked_text_files()
    assert len(files) > 100
    offenders = {
        str(p.relative_to(ROOT)): hits
        for p in files
        if (hits := climbs_out(p, p.read_text(encoding="utf-8", errors="replace")))
    }
    assert offenders == {}


def test_the_check_catches_a_climb_out_and_lets_an_inside_path_pass(tmp_path) -> None:
    inside = ROOT / "deploy" / "compose" / "compose.yaml"
    assert climbs_out(inside, "context: ../..") == []
    assert climbs_out(inside, "see ../../../beside/nmea") == ["../../../beside"]
    assert climbs_out(ROOT / "tests" / "conftest.py", 'ROOT.parent / "beside"') == ["ROOT.parent"]
    # a home folder, spelt in parts so that this file names no one's machine itself
    someones_home = "/".join(("", "home", "ann", "fieldlink"))
    assert climbs_out(ROOT / "README.md", f"cd {someones_home}") == ["/home/a"]
    here = ROOT / "tests" / "agent" / "test_x.py"
    assert climbs_out(here, "Path(__file__).resolve().parents[2]") == []
    assert climbs_out(here, "Path(__file__).resolve().parents[3]") == ["parents[3]"]


def test_the_nmea_logs_the_suite_replays_ship_with_their_licence() -> None:
    nmea = ROOT / "tests" / "data" / "nmea"
    assert (nmea / "COPYING.gpsd").is_file()
    assert "BSD-2-Clause" in (nmea / "COPYING.gpsd").read_text()
    assert len(list(nmea.glob("*.log"))) >= 7


# a file or folder of the project as the docs name it: `server/orders/acks.py`, `rules/geo.py`
NAMED_PATH = re.compile(
    r"`((?:server|edge_agent|wire|mqtt_link|geodesy|tests|harness|bench|deploy|firmware_config"
    r"|scripts|docs|rules|orders|ingest|state|notify|store|web|scale|runtime|commands|sim)"
    r"/[\w./-]*)"
)


def test_every_path_the_docs_name_exists() -> None:
    """Paths in the README and docs are read from the root, or from `server/` where they
    name one of its folders, so a moved module cannot leave them behind."""
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "deploy").rglob("*.md")]
    missing = [
        f"{doc.relative_to(ROOT)}: {name}"
        for doc in docs
        for name in NAMED_PATH.findall(doc.read_text())
        if "*" not in name and not (ROOT / name).exists() and not (ROOT / "server" / name).exists()
    ]
    assert missing == []
