"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

After a small simulation: the dashboard loads with no console error and no failed
request, its charts have data, a member's page shows their balance and every
ledger entry's ``balance_after``, and a new InMail appears there without a reload.
``INMAIL_SCREENSHOTS=DIR`` also keeps the screenshots in DIR (``docs/`` holds them).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, Response, async_playwright

from contracts.events import InMailSent, decode_event
from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer
from inmail.simulator import SimulationOptions, simulate
from projections.catalogue import CATALOGUE
from tests.integration.http_env import http_surface
from tests.integration.service_env import Client, client_for, running_service, settings_for

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@dataclass
class Watched:
    """Everything a page reported that a user would call broken."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _failed(self, request: Request) -> None:
        self.problems.append(f"failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        await launched.close()


@dataclass
class Site:
    service: InMailService
    url: str


@pytest.fixture
async def simulated(own_nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[Site]:
    """A service and its HTTP surface, after a small simulation (the surface saw the command rates)."""
    async with (
        running_service(settings_for(own_nats_server, tmp_path)) as service,
        http_surface(service) as (_, base_url),
    ):
        summary = await simulate(
            own_nats_server.url,
            SimulationOptions(members=60, months=2, seed=7, id_prefix="demo"),
            creds=own_nats_server.creds("client"),
        )
        async with client_for(own_nats_server) as client:
            assert (await client.query("Health", min_seq=summary.last_seq))["ok"] is True
        yield Site(service, base_url)


@pytest.fixture
async def client(own_nats_server: EmbeddedNatsServer, simulated: Site) -> AsyncIterator[Client]:
    async with client_for(own_nats_server) as c:
        yield c


async def screenshot(page: Page, tmp_path: Path, name: str, *, full_page: bool) -> None:
    """Keep a screenshot in the test's folder, and in ``INMAIL_SCREENSHOTS`` when set."""
    shot = await page.screenshot(full_page=full_page)
    assert shot.startswith(b"\x89PNG")
    (tmp_path / name).write_bytes(shot)
    if keep := os.environ.get("INMAIL_SCREENSHOTS"):
        (Path(keep) / name).write_bytes(shot)


async def most_active_sender(service: InMailService) -> str:
    assert service.events is not None
    senders: Counter[str] = Counter()
    seq = 1
    while page := await service.events.read_range(seq):
        for message in page:
            event = decode_event(message.data)
            if isinstance(event, InMailSent):
                senders[event.sender_id] += 1
        seq = page[-1].seq + 1
    return senders.most_common(1)[0][0]


async def bars_with_data(page: Page, chart: str) -> int:
    selector = f"#chart-{chart} svg rect.bar"
    await page.wait_for_selector(selector, timeout=15_000)
    values = await page.eval_on_selector_all(selector, "bars => bars.map(b => Number(b.dataset.value))")
    return sum(1 for value in values if value > 0)


async def test_the_dashboard_loads_cleanly_and_its_charts_have_data(
    browser: Browser, simulated: Site, tmp_path: Path
) -> None:
    watched = Watched()
    page = watched.attach(await browser.new_page(viewport={"width": 1400, "height": 900}))
    await page.goto(simulated.url + "/", wait_until="networkidle")
    for chart in ("rates-tier", "rates-kind", "rates-template"):
        assert await bars_with_data(page, chart) > 0, chart
    assert await page.locator("#projections tr").count() == len(CATALOGUE)
    assert simulated.service.events is not None
    last = await simulated.service.events.last_seq()
    await page.wait_for_function(
        f"document.getElementById('stream-seq').textContent.replace(/,/g, '') === '{last}'", timeout=10_000
    )
    await page.wait_for_selector("#chart-commands svg polyline.line", state="attached", timeout=15_000)
    assert int((await page.text_content("#commands-ok") or "0").replace(",", "")) > 0
    await page.wait_for_selector("#live.on", timeout=10_000)
    await screenshot(page, tmp_path, "dashboard.png", full_page=True)
    assert watched.problems == []
    await page.close()


async def test_a_member_page_shows_the_balance_and_ledger_and_a_new_inmail_without_reload(
    browser: Browser, simulated: Site, client: Client, tmp_path: Path
) -> None:
    member = await most_active_sender(simulated.service)
    watched = Watched()
    page = watched.attach(await browser.new_page(viewport={"width": 1400, "height": 900}))
    await page.goto(f"{simulated.url}/members/{member}", wait_until="networkidle")
    await page.wait_for_selector("#ledger tr", timeout=15_000)
    balance = (await client.query("CreditBalance", member_id=member))["data"]
    assert await page.text_content("#balance") == str(balance["balance"])
    ledger = (await client.query("CreditLedger", member_id=member, limit=200))["data"]["entries"]
    shown = await page.eval_on_selector_all(
        "#ledger tr", "rows => rows.map(r => Number(r.cells[4].textContent.replace(/,/g, '')))"
    )
    assert shown == [entry["balance_after"] for entry in ledger]
    await page.wait_for_selector("#chart-balance svg polyline.line", state="attached", timeout=10_000)
    await page.wait_for_selector("#live.on", timeout=10_000)
    await screenshot(page, tmp_path, "member.png", full_page=False)

    await page.evaluate("window.stillTheSamePage = true")
    stranger = await client.register("recruiter")
    await client.ok("ConnectMembers", member_id=stranger, other_member_id=member)
    await client.ok("SendInMail", sender_id=stranger, recipient_id=member, subject="Just in", body="Hello")
    await page.wait_for_selector("#latest li:has-text('Just in')", timeout=10_000)
    assert await page.evaluate("window.stillTheSamePage") is True
    assert watched.problems == []
    await page.close()
