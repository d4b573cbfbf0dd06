"""``make bench``: the gateway's throughput against a bare Starlette ceiling (``bench/run.py``)."""
