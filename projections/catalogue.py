"""Every projection, by name: the read models a runner can run."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from projections.base import Projection
from projections.credits import CreditsProjection
from projections.enforcement import EnforcementProjection
from projections.inbox import InboxProjection
from projections.response_stats import ResponseStatsProjection

CATALOGUE: Mapping[str, type[Projection]] = MappingProxyType(
    {
        InboxProjection.name: InboxProjection,
        CreditsProjection.name: CreditsProjection,
        ResponseStatsProjection.name: ResponseStatsProjection,
        EnforcementProjection.name: EnforcementProjection,
    }
)
"""Every projection, by name."""


class UnknownProjection(ValueError):
    """A projection name that is not in the catalogue (or not run here)."""
