"""The retry schedule and Retry-After parsing."""

import time
from email.utils import formatdate

import pytest

from services.notify import retries


def test_the_schedule_then_gives_up():
    now = 1_000_000.0
    delays = [retries.next_attempt_at(attempt, now) - now for attempt in range(1, 9)]
    expected = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    for delay, base in zip(delays, expected, strict=True):
        assert base <= delay <= base * (1 + retries.JITTER)
    assert retries.next_attempt_at(9, now) is None


def test_jitter_spreads_deliveries_that_failed_together():
    assert len({retries.next_attempt_at(3, 0.0) for _ in range(20)}) > 1


def test_retry_after_wins_when_it_asks_for_longer():
    assert retries.next_attempt_at(1, 0.0, retry_after=60) == 60
    assert retries.next_attempt_at(3, 0.0, retry_after=1) >= 300
    assert retries.next_attempt_at(1, 0.0, retry_after=10**9) == retries.MAX_RETRY_AFTER


@pytest.mark.parametrize("value, expected", [("120", 120.0), ("0", 0.0), ("", None), (None, None), ("soon", None)])
def test_parse_retry_after_seconds(value, expected):
    assert retries.parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = time.time()
    assert retries.parse_retry_after(formatdate(now + 300, usegmt=True), now) == pytest.approx(300, abs=1)
    assert retries.parse_retry_after(formatdate(now - 300, usegmt=True), now) == 0.0
