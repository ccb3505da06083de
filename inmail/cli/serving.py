"""Running ``inmail serve``: the data folder's lock, the embedded nats-server (secured and
watched), the HTTP surface, the service, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from nats.js.errors import ServiceUnavailableError

from eventstore import NatsUnreachable, connect
from inmail.cli.common import CliError, creds_for
from inmail.natsserver import EmbeddedNatsServer, NatsServerError, NatsServerSettings
from inmail.observability.logs import LogFormat, json_line
from inmail.security.installation import Installation, SecurityError, refuse_insecure, secure
from inmail.supervisor import SupervisedNatsServer, until_stopped

START_PATIENCE = 60.0
"""Seconds serve keeps starting again while JetStream does not answer (a cluster electing a leader)."""
_NOT_ENABLED = frozenset({10039, 10076})
"""JetStream not enabled for the account, or on the server: no waiting helps."""


def jetstream_busy(exc: BaseException) -> bool:
    """What JetStream answers, or fails to, while a cluster has no leader for what is asked:
    no answer in time, or "temporarily unavailable"."""
    if isinstance(exc, ServiceUnavailableError):
        return exc.err_code not in _NOT_ENABLED
    return isinstance(exc, TimeoutError)

MIN_SERVER = (2, 12)
"""Atomic batch publish arrived in nats-server 2.12 (batch direct get in 2.11)."""

log = logging.getLogger("inmail")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The flags of ``inmail serve``, as given on the command line or in ``INMAIL_*``."""

    nats_url: str | None
    port: int
    data_dir: Path
    insecure: bool
    creds: Path | None
    """``--creds`` for an external server (``--nats``); the embedded server's service uses its own."""
    creds_from_command_line: bool
    store: str | None
    trust_client_time: bool
    relaxed_fsync: bool
    replicas: int
    max_in_flight: int
    role: str
    http_port: int
    http_host: str
    log_format: LogFormat
    new_stream: bool = False
    key_dir: Path | None = None
    """The key-encryption key's folder; None: ``datakeys`` in the data folder."""


async def serve(options: ServeOptions) -> int:
    """Run until SIGTERM or SIGINT, then drain and stop."""
    from inmail.app import InMailService, ServiceSettings, default_store_url
    from inmail.datadir import DataDirInUse, DataDirLock
    from inmail.http.app import HttpSurface
    from inmail.http.server import HttpPortTaken, HttpServer, bind
    from inmail.observability.tracing import TracingConfigError, tracer_provider_from_env
    from inmail.stream_guard import StreamRefused
    from vault import KeyStoreRefused

    try:
        tracer_provider = tracer_provider_from_env(one_line=options.log_format == "json")
    except TracingConfigError as exc:
        raise CliError(str(exc)) from exc

    projections = options.role in ("all", "read")
    lock: DataDirLock | None = None
    if options.nats_url is None or (projections and options.store is None):
        # The folder holds the embedded server's store or the read models: one owner at a time.
        try:
            lock = DataDirLock(options.data_dir).acquire()
        except DataDirInUse as exc:
            raise CliError(str(exc)) from exc
    embedded: SupervisedNatsServer | None = None
    service = None
    surface: HttpSurface | None = None
    http: HttpServer | None = None
    lost: str | None = None
    try:
        # Bound before anything starts: a taken port ends serve at once, in one line.
        sock = bind(options.http_host, options.http_port) if options.http_port else None
    except HttpPortTaken as exc:
        if lock is not None:
            lock.release()
        raise CliError(str(exc)) from exc
    try:
        if sock is not None:
            # Serving from the start: /healthz answers, /readyz says why the service is not ready yet.
            surface = HttpSurface()
            http = HttpServer(surface.app, sock)
            await http.start()
            surface.start()
        url = options.nats_url
        creds = creds_for(options.creds, options.data_dir, "service") if url is not None else None
        if url is None:
            assert lock is not None
            installation = _embedded_security(options)
            if installation is not None:
                creds = installation.creds("service")
            server_settings = NatsServerSettings(
                data_dir=options.data_dir / "nats",
                port=options.port,
                durable=not options.relaxed_fsync,
                security=installation,
            )
            # The server inherits the lock: the folder stays owned until the server is gone too.
            embedded = SupervisedNatsServer(EmbeddedNatsServer(server_settings, pass_fds=[lock.fd]))
            try:
                url = await embedded.start()
            except NatsServerError as exc:
                raise CliError(str(exc)) from exc
            log.info("embedded nats-server on %s (data in %s)", url, options.data_dir / "nats")
        await check_server(url, creds)
        options.data_dir.mkdir(parents=True, exist_ok=True)
        settings = ServiceSettings(
            nats_url=url,
            nats_creds=creds,
            store_url=options.store or default_store_url(options.data_dir),
            trust_client_time=options.trust_client_time,
            max_in_flight=options.max_in_flight,
            replicas=options.replicas,
            # With trusted client time the clients own the calendar (a simulation plays the
            # scheduler); a refresh stamped with the wall clock would move simulated members
            # to today and refuse every later simulated command as INVALID_TIME.
            scheduler=not options.trust_client_time,
            commands=options.role in ("all", "commands"),
            projections=projections,
            new_stream=options.new_stream,
            tracer_provider=tracer_provider,
            key_dir=options.key_dir or options.data_dir / "datakeys",
        )
        deadline = asyncio.get_running_loop().time() + START_PATIENCE
        while True:
            service = InMailService(settings)
            if surface is not None:
                surface.service = service
            try:
                await service.start()
                break
            except (StreamRefused, KeyStoreRefused) as exc:
                raise CliError(str(exc)) from exc
            except Exception as exc:
                if not jetstream_busy(exc):
                    raise
                # A cluster electing a leader (a node just went away) answers nothing for a few
                # seconds: a supervisor restarting serve then must not see it exit.
                await service.stop()
                if asyncio.get_running_loop().time() > deadline:
                    raise CliError(
                        f"JetStream at {url} did not answer the service's start within "
                        f"{START_PATIENCE:g} s ({type(exc).__name__}): no quorum?"
                    ) from exc
                log.warning("JetStream did not answer (%s; electing a leader?): again", type(exc).__name__)
                await asyncio.sleep(1.0)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        serving = {"all": "commands and queries", "commands": "commands", "read": "queries"}[options.role]
        read_models = f", read models {settings.store_url}" if settings.projections else ""
        access = f", credentials in {creds.parent}" if embedded and creds else ""
        site = f", HTTP http://{options.http_host}:{http.port}" if http is not None else ""
        ready = f"InMail broker ready ({serving}): NATS {url}{read_models}{site}{access}"
        print(json_line("info", ready) if options.log_format == "json" else ready, flush=True)
        if embedded and not creds:
            warning = (
                f"--insecure: the embedded nats-server at {url} lets anyone who reaches it publish, "
                "read and delete anything; for development only"
            )
            print(
                json_line("warning", warning)
                if options.log_format == "json"
                else f"inmail: WARNING: {warning}",
                file=sys.stderr,
                flush=True,
            )
        lost = await until_stopped(stop, embedded)
        log.info("stopping: finishing commands in flight")
    finally:
        if surface is not None:
            await surface.stop()
        if http is not None:
            await http.stop()
        elif sock is not None:
            sock.close()
        if service is not None:
            await service.stop()
        if embedded is not None:
            await embedded.stop()
        if lock is not None:
            lock.release()
    if lost is not None:
        raise CliError(lost)
    return 0


def _embedded_security(options: ServeOptions) -> Installation | None:
    """The data folder's keys for the embedded server (made on first start); None with ``--insecure``."""
    if options.creds is not None and options.creds_from_command_line:
        raise CliError(
            "--creds is for an external server (--nats): the embedded server's service uses "
            f"{options.data_dir / 'creds' / 'service.creds'}"
        )
    try:
        if options.insecure:
            refuse_insecure(options.data_dir)
            return None
        return secure(options.data_dir)
    except SecurityError as exc:
        raise CliError(str(exc)) from exc


async def check_server(url: str, creds: Path | None = None) -> None:
    """Refuse, with one line, a NATS server that is unreachable or too old for the store."""
    try:
        nc = await connect(url, name="inmail-check", creds=creds)
    except NatsUnreachable as exc:
        raise CliError(str(exc)) from exc
    try:
        version = nc.connected_server_version
        if (version.major, version.minor) < MIN_SERVER:
            raise CliError(
                f"nats-server {version} at {url} is too old: atomic batch publish needs "
                f"{MIN_SERVER[0]}.{MIN_SERVER[1]} or newer"
            )
        deadline = asyncio.get_running_loop().time() + START_PATIENCE
        while True:
            try:
                await nc.jetstream().account_info()
                return
            except Exception as exc:
                if not jetstream_busy(exc) or asyncio.get_running_loop().time() > deadline:
                    raise CliError(f"nats-server at {url} has no JetStream available: {exc}") from exc
                await asyncio.sleep(1.0)
    finally:
        await nc.close()
