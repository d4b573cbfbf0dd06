# The Headwater image the compose file runs as gateway, worker and migrate.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md topology.yaml ./
COPY headwater ./headwater
COPY capture_gateway ./capture_gateway
COPY streams ./streams
COPY sinks ./sinks
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV HEADWATER_TOPOLOGY=/app/topology.yaml \
    HEADWATER_STATE_DIR=/var/lib/headwater
ENTRYPOINT ["headwater"]
