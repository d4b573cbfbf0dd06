"""The ClickHouse sink: embedded chDB (served by one owner process) or a server."""
