"""``python -m bench.worker [options]``: only the worker half of ``make bench`` (``bench/run.py --worker``)."""

from __future__ import annotations

import sys

from bench.run import main

sys.exit(main(["--worker", *sys.argv[1:]]))
