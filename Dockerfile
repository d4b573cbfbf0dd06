# The Headwater image the compose file runs as gateway, worker and migrate.

# Builder: the wheel, from the files it is built from (tests/unit/test_wheel.py builds and checks the same).
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY headwater ./headwater
COPY capture_gateway ./capture_gateway
COPY streams ./streams
COPY sinks ./sinks
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# The image: the wheel and its dependencies, no source tree. Compose gives it a real ClickHouse
# server, so it goes without the chdb extra (only the local dev stack's embedded ClickHouse needs it).
FROM python:3.11-slim
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/headwater-*.whl
WORKDIR /app
COPY topology.yaml ./
ENV HEADWATER_TOPOLOGY=/app/topology.yaml \
    HEADWATER_STATE_DIR=/var/lib/headwater
ENTRYPOINT ["headwater"]
