"""Fixtures of the integration tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.clock import ShiftedClock


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> ShiftedClock:
    """The clock a test gives its service and reads itself: the wall clock unless ``at_any_time`` moves it."""
    return ShiftedClock(getattr(request, "param", timedelta(0)))
