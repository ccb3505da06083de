"""The routes: probes, metrics, the dashboard's pages, its JSON and SVG, and its live updates.

| route | answers |
|---|---|
| ``/healthz`` | 200 while the process lives |
| ``/readyz`` | 200 when ready (``inmail.http.probes``), else 503 with the reasons |
| ``/metrics`` | the Prometheus text exposition format |
| ``/``, ``/members/<member_id>`` | the dashboard and a member's page (static HTML and JavaScript) |
| ``/api/overview``, ``/api/members/<member_id>`` | their figures, as JSON |
| ``/api/charts/<name>.svg``, ``/api/members/<member_id>/balance.svg`` | their charts |
| ``/api/events`` | server-sent events: the stream's new sequence and the members it touched |
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from inmail.app import InMailService
from inmail.http import charts
from inmail.http.dashboard import (
    WINDOWS,
    CommandRates,
    Dashboard,
    Grouping,
    Refused,
    Unavailable,
    command_totals,
)
from inmail.http.live import Listener, LiveEvents
from inmail.http.probes import readiness, scrape_state

STATIC = Path(__file__).parent / "static"
MEMBER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
UPDATES_AT_MOST_EVERY = 0.5
"""Seconds between two live updates to one browser: a busy stream would otherwise flood it."""
KEEP_ALIVE = 15.0
SAMPLE_EVERY = 2.0
"""Seconds between two samples of the command counts (the rates chart's resolution)."""

Endpoint = Callable[[Request], Awaitable[Response]]

_encoder = msgspec.json.Encoder()


class HttpSurface:
    """The ASGI application of one service, with what its dashboard keeps between requests.

    It serves before the service exists (``service`` None: ``serve`` is still starting the
    embedded nats-server), so that ``/healthz`` answers and ``/readyz`` says why not ready.
    """

    def __init__(self, service: InMailService | None = None) -> None:
        self.service = service
        self._live: LiveEvents | None = None
        self._dashboard: Dashboard | None = None
        self._rates = CommandRates()
        self._sampler: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics),
                Route("/", _page("index.html")),
                Route("/members/{member_id}", _member_page),
                Route("/api/overview", self._guarded(self.overview)),
                Route("/api/members/{member_id}", self._guarded(self.member)),
                Route("/api/members/{member_id}/balance.svg", self._guarded(self.balance_chart)),
                Route("/api/charts/{name}.svg", self._guarded(self.chart)),
                Route("/api/events", self.events),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )

    def start(self) -> None:
        """Sample the service's command counts from now on (a service may come later)."""
        self._sampler = asyncio.create_task(self._sample_rates(), name="command-rates")

    async def stop(self) -> None:
        """End the live updates and the sampling of command rates."""
        if self._live is not None:
            await self._live.stop()
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.wait([self._sampler])

    # ------------------------------------------------------------------ probes and metrics

    async def healthz(self, request: Request) -> Response:
        """Alive: the process answers."""
        return _json({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        """Ready for traffic, or 503 with every reason it is not."""
        if self.service is None:
            return _json({"status": "not ready", "reasons": ["starting: NATS not connected yet"]}, 503)
        state = await readiness(self.service)
        if state.ready:
            return _json({"status": "ready"})
        return _json({"status": "not ready", "reasons": state.reasons}, 503)

    async def metrics(self, request: Request) -> Response:
        """Every series, with positions and lag as they are now."""
        if self.service is None:
            return _json({"error": "the service is starting"}, 503)
        metrics = self.service.metrics
        if metrics is None:
            return _json({"error": "metrics are off in this service"}, 404)
        metrics.state = await scrape_state(self.service)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ the dashboard's data

    async def overview(self, request: Request) -> Response:
        """Positions, health and this process's commands."""
        dashboard = self._ready_dashboard()
        return _json({**await dashboard.overview(), "role": _role(self._service())})

    async def member(self, request: Request) -> Response:
        """One member's figures."""
        return _json(await self._ready_dashboard().member(_member_id(request)))

    async def balance_chart(self, request: Request) -> Response:
        """A member's balance over time."""
        points = await self._ready_dashboard().balance_points(_member_id(request))
        return _svg(charts.lines({"balance": points}, step=True, empty="no credit movements yet"))

    async def chart(self, request: Request) -> Response:
        """One of the dashboard's charts, by name."""
        dashboard = self._ready_dashboard()
        name = request.path_params["name"]
        if name == "commands":
            if dashboard.metrics is None:
                return _svg(charts.lines({}, empty="metrics are off"))
            return _svg(charts.lines(dashboard.rates.per_second(), unit="/s", empty="measuring…"))
        if name == "errors":
            errors = command_totals(dashboard.metrics)["errors"] if dashboard.metrics is not None else {}
            rows = [charts.BarRow(code, [count]) for code, count in errors.items()]
            return _svg(charts.bars(rows, ["refused"], empty="no command refused"))
        grouping = name.removeprefix("rates-")
        if not name.startswith("rates-") or grouping not in get_args(Grouping):
            return _json({"error": f"no chart {name}"}, 404)
        await self._live_events().started()
        rows = await dashboard.response_rates(grouping)
        series = [f"sent in the last {days} days" for days in WINDOWS]
        return _svg(charts.bars(rows, series, percent=True, empty="no InMail in 90 days"))

    async def events(self, request: Request) -> Response:
        """Server-sent events: one whenever new events were stored, at most every half second."""
        try:
            live = self._live_events()
        except Unavailable as exc:
            return _json({"error": str(exc)}, 503)
        await live.started()
        return StreamingResponse(
            _updates(live),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def answer(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Refused as refused:
                status = 404 if refused.code in ("UNKNOWN_MEMBER", "INVALID_QUERY") else 503
                return _json({"error": str(refused), "code": refused.code}, status)
            except Unavailable as exc:
                return _json({"error": str(exc)}, 503)

        return answer

    def _service(self) -> InMailService:
        if self.service is None or self.service.nc is None or self.service.events is None:
            raise Unavailable("the service is starting")
        return self.service

    def _ready_dashboard(self) -> Dashboard:
        if self._dashboard is None:
            service = self._service()
            assert service.nc is not None
            self._dashboard = Dashboard(service.nc, self._live_events(), service.metrics, self._rates)
        return self._dashboard

    async def _sample_rates(self) -> None:
        while True:
            if self.service is not None and self.service.metrics is not None:
                self._rates.sample(self.service.metrics)
            await asyncio.sleep(SAMPLE_EVERY)

    def _live_events(self) -> LiveEvents:
        if self._live is None:
            events = self._service().events
            assert events is not None
            self._live = LiveEvents(events)
        return self._live


async def _updates(live: LiveEvents) -> AsyncIterator[str]:
    listener = Listener()
    live.listeners.add(listener)
    try:
        yield _event({"stream_seq": live.stream_seq, "members": None})
        while not live.stopped.is_set():
            try:
                async with asyncio.timeout(KEEP_ALIVE):
                    await listener.wake.wait()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if live.stopped.is_set():
                return
            members = listener.take()
            yield _event({"stream_seq": live.stream_seq, "members": sorted(members) if members else None})
            await asyncio.sleep(UPDATES_AT_MOST_EVERY)
    finally:
        live.listeners.discard(listener)


def _event(data: dict[str, Any]) -> str:
    return f"data: {_encoder.encode(data).decode()}\n\n"


def _page(name: str) -> Endpoint:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / name, media_type="text/html")

    return page


async def _member_page(request: Request) -> Response:
    if not MEMBER_ID.match(request.path_params["member_id"]):
        return _json({"error": "a member id is 1-64 of A-Z a-z 0-9 _ -"}, 404)
    return FileResponse(STATIC / "member.html", media_type="text/html")


def _member_id(request: Request) -> str:
    member_id: str = request.path_params["member_id"]
    if not MEMBER_ID.match(member_id):
        raise Refused("INVALID_QUERY", "a member id is 1-64 of A-Z a-z 0-9 _ -")
    return member_id


def _role(service: InMailService) -> str:
    settings = service.settings
    if settings.commands and settings.projections:
        return "all"
    return "commands" if settings.commands else "read"


def _json(data: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(data), status_code=status, media_type="application/json")


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
