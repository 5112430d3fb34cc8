"""recovery: case work on complaints (acknowledge, respond, remedies, resolution, reopening,
satisfaction) and service guarantees that pay out exactly once per complaint and guarantee."""
