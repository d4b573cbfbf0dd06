"""The parent of a detached app, recording how it ended: ``python -m headwater.stack.supervise EXIT_FILE -- CMD...``.

``headwater run --detach`` leaves the gateway and the worker running after it returns, so no
process is left to see one of them crash. This small parent runs the app in its own process
group, passes SIGTERM, SIGINT and SIGHUP on to it, and when it ends writes its exit (code or
signal, and when) to EXIT_FILE as JSON, which ``headwater status`` reports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL``, from a ``Popen.returncode``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m headwater.stack.supervise EXIT_FILE -- CMD...\n")
        return 2
    exit_file, command = Path(argv[0]), argv[2:]
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = exit_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": child.pid, "code": code, "exit": describe_exit(code),
                               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    tmp.replace(exit_file)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
