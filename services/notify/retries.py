"""When to try a failed delivery again.

The schedule spreads attempts over about a day (immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h) so a receiver that is down for a deploy or a night still gets everything,
while jitter keeps thousands of deliveries that failed together from returning together.
"""

from __future__ import annotations

import email.utils
import random
import time

RETRY_DELAYS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.1
MAX_RETRY_AFTER = 24 * 3600
DISABLE_AFTER = 3 * 24 * 3600  # a subscription failing this long without one success is disabled


def next_attempt_at(attempt: int, now: float, retry_after: float | None = None) -> float | None:
    """When attempt number `attempt + 1` should run after attempt `attempt` failed, or None
    when the schedule is used up. A receiver's Retry-After is honoured when it asks for more."""
    if attempt > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempt - 1] * (1 + random.uniform(0, JITTER))  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)
