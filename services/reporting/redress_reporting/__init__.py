"""reporting: read models projected from the event log, the query API, and metrics."""
