"""``--profile``: the gateway under cProfile or pyinstrument, and its hot spots as tables."""

from __future__ import annotations

import pstats
import subprocess
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.console import console
from tests.support import ROOT
from tests.support.processes import PYTHON

HEADWATER_MODULES = ("capture_gateway/", "headwater/", "schemas/", "streams/")


def print_profile(path: Path, limit: int, requests: int) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative")
    out = path.with_suffix(".txt")
    with out.open("w") as handle:
        pstats.Stats(str(path), stream=handle).sort_stats("cumulative").print_stats(80)
        pstats.Stats(str(path), stream=handle).sort_stats("tottime").print_stats(60)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max((value[3] for value in raw.values()), default=1.0)
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        rel = filename.replace(str(ROOT) + "/", "")
        if rel.startswith(HEADWATER_MODULES) and (nc < 0 or nc >= 100):  # per-request functions, not start-up
            rows.append((ct, tt, nc, f"{rel}:{line}({func})"))
    rows.sort(reverse=True)
    table = Table(title=f"Headwater functions by cumulative time ({path.name}; the main thread only; "
                        f"{requests:,} requests answered, warm-up included)", title_justify="left")
    for column in ("cumulative s", "% of main thread", "µs/request", "own s", "calls", "function"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for ct, tt, nc, name in rows[:limit]:
        table.add_row(f"{ct:.2f}", f"{100 * ct / total:.0f}%", f"{1e6 * ct / max(requests, 1):.0f}", f"{tt:.2f}",
                      f"{nc:,}" if nc >= 0 else "-", name)
    console.print(table)
    own = sorted(((tt, nc, f"{f.replace(str(ROOT) + '/', '')}:{ln}({fn})")
                  for (f, ln, fn), (_cc, nc, tt, _ct, _c) in raw.items() if nc < 0 or nc >= 100), reverse=True)
    table = Table(title="All functions by own time (top 25; called ≥ 100 times)", title_justify="left")
    for column in ("own s", "calls", "function"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for tt, nc, name in own[:25]:
        table.add_row(f"{tt:.2f}", f"{nc:,}", name)
    console.print(table)
    console.print(f"full listing: {out}")


def pyinstrument_to_pstats(session: Path) -> Path:
    """Render a pyinstrument session as a call tree (text) and as pstats (for the tables)."""
    out = session.with_suffix(".prof")
    base = [PYTHON, "-m", "pyinstrument", "--load", str(session)]
    subprocess.run([*base, "-r", "pstats", "-o", str(out)], check=True, cwd=ROOT)
    subprocess.run([*base, "-r", "text", "--show", "*/capture_gateway/*",
                    "-p", "processor_options.filter_threshold=0.005", "-o", str(session.with_suffix(".tree.txt"))],
                   check=True, cwd=ROOT)
    console.print(f"call tree: {session.with_suffix('.tree.txt')}")
    return out
