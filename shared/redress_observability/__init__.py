"""Structured logs without personal data, Prometheus metrics, and health endpoints."""
