"""Transports deliver one notification. The contract: `send()` returns a Result or raises
DeliveryError, which says whether trying again could help (`permanent`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """What the receiver answered to a successful delivery."""

    status: int | None = None
    latency_ms: int = 0
    answer: str = ""  # the first bytes of the answer, for the delivery log


class DeliveryError(Exception):
    """The delivery did not succeed.

    `permanent`: retrying cannot help (the delivery fails now). `disable`: the receiver told
    us to stop (HTTP 410, a refused address, a rejected mailbox), so the subscription is
    disabled. `retry_after`: seconds the receiver asked us to wait.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, disable: bool = False, status: int | None = None,
        latency_ms: int = 0, answer: str = "", retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or disable
        self.disable = disable
        self.status = status
        self.latency_ms = latency_ms
        self.answer = answer
        self.retry_after = retry_after
