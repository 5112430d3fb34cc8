"""Fixtures' building blocks: the Kafka broker, service processes, topic readers."""
