"""The load generator's promises the checker relies on: a failed submission is retried with the
same Idempotency-Key until answered 202, 4xx answers are not retried, and load goes to loopback
only. Against a small local HTTP server, no broker."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiohttp import web
from redress_kafka.local_broker import free_port

from benchmarks.loadgen import LoadGenerator, require_loopback


async def test_failed_submissions_are_retried_with_the_same_key() -> None:
    keys_seen: dict[str, int] = defaultdict(int)

    async def submit(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        keys_seen[key] += 1
        index = int(key.rsplit("-", 1)[1])
        if index % 3 == 0 and keys_seen[key] == 1:
            return web.json_response({"error": "broker_unavailable"}, status=503)
        if index % 3 == 1 and keys_seen[key] == 1:
            assert request.transport is not None
            request.transport.close()  # the answer is lost in flight
            return web.Response(status=500)
        if index == 5:
            return web.json_response({"errors": [{"field": "channel"}]}, status=422)
        return web.json_response(
            {"complaint_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key))}, status=202
        )

    app = web.Application()
    app.router.add_post("/v1/complaints", submit)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        load = LoadGenerator(f"http://127.0.0.1:{port}", count=12, rate=200, retry_for_s=20)
        result = await load.run()
    finally:
        await runner.cleanup()

    assert result.sent == 12
    assert [s.index for s in result.not_accepted] == [5]  # the 422 is reported, not retried
    assert keys_seen[f"load-{load.run_id}-5"] == 1
    assert len(result.accepted) == 11
    for submission in result.submissions:
        expected = 2 if submission.index % 3 in (0, 1) else 1
        assert submission.attempts == expected, submission
        assert keys_seen[submission.idempotency_key] == expected
    assert len(set(keys_seen)) == 12  # one key per complaint, reused across its attempts


@pytest.mark.parametrize("url", ["http://10.0.0.5:8001", "https://example.com"])
def test_load_goes_to_loopback_only(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(url)
