"""The model server's rate limiter: a token bucket per caller, and never more buckets than it needs."""

from __future__ import annotations

from engine.server.guards import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_waits_for_the_refill():
    clock = Clock()
    limiter = RateLimiter(1.0, burst=2, clock=clock)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert [limiter.allow("a") for _ in range(2)] == [True, False]


def test_an_idle_callers_bucket_is_dropped_once_it_is_full_again_and_not_before():
    clock = Clock()
    limiter = RateLimiter(1.0, burst=2, clock=clock)  # an empty bucket is full again after 2 s
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 1.9
    limiter.allow("b")
    assert limiter.callers == 2, "a's bucket is still refilling: dropping it would forgive a's burst"
    clock.now += 0.1
    limiter.allow("b")
    assert limiter.callers == 1
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False], "a new bucket acts as the old one"


def test_a_flood_of_addresses_keeps_at_most_max_callers_buckets_the_most_recent_ones():
    clock = Clock()
    limiter = RateLimiter(1.0, burst=1, max_callers=3, clock=clock)
    for n in range(1000):
        assert limiter.allow(f"10.0.{n // 256}.{n % 256}")
    assert limiter.callers == 3
    assert not limiter.allow("10.0.3.231"), "the most recent caller is still held, with its bucket spent"
    assert limiter.allow("10.0.0.0"), "the oldest was dropped and starts afresh"
