"""Double opt-in: the confirmation email is the only thing sent to an unconfirmed address."""

from __future__ import annotations

import logging

from services.notify.transports import DeliveryError, email
from shared import keys
from shared.runtime import Runtime
from shared.subscriptions import CONFIRM_TTL, NotFound, SubscriptionStore

log = logging.getLogger("pressroom.notify")


sent_key = keys.confirmation_sent


def send_confirmation(rt: Runtime, sid: str) -> str:
    """Email the confirmation link unless the subscription is gone, confirmed or already sent to.

    Raises DeliveryError when the mail server cannot take it now (the task retries);
    a permanent refusal is logged and dropped.
    """
    try:
        sub = SubscriptionStore(rt.redis).get(sid)
    except NotFound:
        return "missing"
    if sub.channel != "email" or sub.status != "pending":
        return "not pending"
    if rt.redis.exists(sent_key(sid)):
        return "already sent"
    try:
        email.send(rt.settings, email.confirmation_message(rt.settings, sub))
    except DeliveryError as exc:
        if exc.permanent:
            log.warning("confirmation for %s refused: %s", sid, exc)
            return "refused"
        raise
    rt.redis.set(sent_key(sid), "1", ex=CONFIRM_TTL)
    log.info("confirmation sent for %s", sid)
    return "sent"
