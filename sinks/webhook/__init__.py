"""The ``webhook`` sink: signed JSON batches POSTed to a URL, retried, paused and dead-lettered when it stays down."""
