"""routing: priority, assignment, SLA clocks, escalation and surge detection (faust-streaming)."""
