"""``bench/worker/run.py [options]``: only the worker half of ``make bench`` (``bench/run.py --worker``).

Takes every option of ``bench/run.py``; see ``bench.worker`` for what it measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository's packages

from bench.run import main

if __name__ == "__main__":
    sys.exit(main(["--worker", *sys.argv[1:]]))
