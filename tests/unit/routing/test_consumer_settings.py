"""The worker's Kafka consumer as routing configures it (built, never connected)."""

from __future__ import annotations

from pathlib import Path

from faust.types import TP
from redress_routing.app import (
    FETCH_BYTES_PER_PARTITION,
    FETCH_MAX_WAIT_MS,
    POLL_RECORDS_MAX,
    create_app,
)
from redress_routing.settings import RoutingSettings


async def test_the_worker_consumer_fetches_briefly_and_reads_ahead_little(tmp_path: Path) -> None:
    app = create_app(RoutingSettings(data_dir=tmp_path, table_store="memory://"))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        # faust's own choice (1,500 ms) let a fetch of quiet partitions hold busy ones back.
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 100
        assert consumer._max_partition_fetch_bytes == FETCH_BYTES_PER_PARTITION
        assert consumer._max_poll_records == POLL_RECORDS_MAX
    finally:
        await consumer.stop()


async def test_a_gap_in_the_offsets_read_is_not_acknowledged_but_reread(tmp_path: Path) -> None:
    """faust would count skipped offsets as processed (and commit past them); routing leaves
    them unacknowledged and marks the partition for a rejoin, which seeks back to them."""
    app = create_app(RoutingSettings(data_dir=tmp_path, table_store="memory://"))
    consumer = app.consumer
    tp = TP("redress.intake.complaints", 2)
    consumer._committed_offset[tp] = 50  # type: ignore[attr-defined]
    consumer._acked[tp].extend(range(50, 56))  # type: ignore[attr-defined]
    await consumer._add_gap(tp, 56, 58)  # type: ignore[attr-defined]
    assert not consumer._gap[tp]  # type: ignore[attr-defined]
    assert consumer.skipped == {tp}  # type: ignore[attr-defined]
    consumer._acked[tp].extend([58, 59])  # type: ignore[attr-defined]
    # The committed offset may reach the first skipped record, never pass it.
    assert consumer._new_offset(tp) == 56  # type: ignore[attr-defined]
