"""Kafka plumbing shared by the services: settings, the event producer, topic admin, the
dead-letter writer, and a local KRaft broker started from Maven Central jars."""
