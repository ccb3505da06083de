"""The model's random draws: how many events a day brings, how long members take, an InMail's fate."""

from __future__ import annotations

import math
import random

from contracts.policy import CURRENT_POLICY
from inmail.simulator.corpus import ACK_SHARE, BLOCK_AFTER_DECLINE, READ_SHARE, REPLY_SHARE, TierProfile
from inmail.simulator.model import Fate


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw; the normal approximation above 50, where it is indistinguishable."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def response_delay(rng: random.Random) -> int:
    """Days until a response: mostly days, a few after the refund window."""
    draw = rng.random()
    if draw < 0.75:
        return rng.randint(1, 4)
    if draw < 0.90:
        return rng.randint(5, 14)
    if draw < 0.96:
        return rng.randint(15, 45)
    window = CURRENT_POLICY.refund_window.days
    return rng.randint(window + 5, window + 60)


def read_delay(rng: random.Random) -> int:
    """Days until an InMail is read: mostly the next day."""
    draw = rng.random()
    if draw < 0.7:
        return 1
    if draw < 0.9:
        return rng.randint(2, 3)
    return rng.randint(4, 10)


def draw_fate(rng: random.Random, rate: float, profile: TierProfile, *, follow_up: bool) -> Fate:
    """Everything that will happen to an InMail with this response rate, sent by this tier."""
    # A fixed number of draws per InMail, whatever the outcome, keeps later draws stable
    # when one probability of the model is tuned.
    responds, respond_after = rng.random() < rate, response_delay(rng)
    reads, read_after = rng.random() < READ_SHARE, read_delay(rng)
    acknowledged, replies = rng.random() < ACK_SHARE, rng.random() < REPLY_SHARE
    blocks = rng.random() < BLOCK_AFTER_DECLINE
    follows, follow_up_after = rng.random() < profile.follow_up, rng.randint(6, 9)
    if responds:
        read_after = min(read_after, respond_after)
    unanswered = not responds or respond_after > follow_up_after
    return Fate(
        read_after=read_after if responds or reads else None,
        acknowledged=acknowledged,
        respond_after=respond_after if responds else None,
        replies=replies,
        blocks_after_decline=blocks and not replies,
        follow_up_after=follow_up_after if follow_up and follows and unanswered else None,
    )
