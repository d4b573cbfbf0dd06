"""The ``files`` sink: records as JSON Lines (gzip) or Parquet files, partitioned by project, date and window."""
