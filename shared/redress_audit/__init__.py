"""Audit of the event log: a complaint's history, its state as of any moment, tamper evidence.

Pure cores (`history`, `asof`, `integrity`) work on events and records already read; `reader`
is the only module that talks to Kafka, and it only reads.
"""
