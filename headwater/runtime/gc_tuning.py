"""Cyclic garbage collector settings for the long-running processes (gateway and worker).

Both make many short-lived containers per event and almost no reference cycles. CPython's
default thresholds (700, 10, 10) run a young collection every 700 allocations and, with
thousands of decoded events alive in a batch, full collections that walk every one of them:
measured on the worker's stages, 28 % of their CPU. Objects alive at start-up (modules,
config, clients) are frozen out of the scans.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 20)
"""Young collections every 50,000 net allocations instead of 700 (the gateway's; the worker passes
its own, ``streams.app.WORKER_GC_THRESHOLDS``, because its batches outlive a young window)."""


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Freeze what is alive now and raise the collection thresholds; call once, after start-up."""
    gc.freeze()
    gc.set_threshold(*thresholds)
