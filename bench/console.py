"""The bench's terminal: one console, and a timestamped line per step."""

from __future__ import annotations

import shutil
import time

from rich.console import Console

console = Console(highlight=False, width=max(shutil.get_terminal_size((200, 40)).columns, 200))
START = time.monotonic()


def step(message: str) -> None:
    console.print(f"[bold blue]==>[/] [dim]{time.monotonic() - START:6.1f}s[/] {message}")
