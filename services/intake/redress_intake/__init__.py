"""intake: takes complaints over HTTP (and, see `inbound`, from other systems' Kafka events),
validates them and appends ComplaintReceived once the broker has acknowledged it."""
