"""``inmail serve``: the service, its projections and queries, with an embedded nats-server
unless ``--nats`` names one."""

from __future__ import annotations

from pathlib import Path

import click

from inmail.cli.common import CONTEXT_SETTINGS, CliError, creds_option, log_level_option, run
from inmail.cli.serving import ServeOptions, serve
from inmail.observability.logs import LOG_FORMATS, LogFormat, configure_logging, json_line

ROLES = ("all", "commands", "read")
"""What one ``inmail serve`` process runs: the projections share the CPU with the
command handlers, so a busy deployment runs them in processes of their own."""


def _env(name: str) -> str:
    return f"INMAIL_{name}"


@click.command(
    "serve", short_help="Run the service, its projections and queries.", context_settings=CONTEXT_SETTINGS
)
@click.option(
    "--nats",
    "nats_url",
    metavar="URL",
    envvar=_env("NATS"),
    show_envvar=True,
    help="a running NATS server (2.12 or newer) to use instead of starting an embedded one; a "
    "cluster's seeds comma-separated (nats://a:4222,nats://b:4222,...): it reconnects to whichever is up",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=4222,
    show_default=True,
    envvar=_env("PORT"),
    show_envvar=True,
    help="the embedded nats-server's port",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("inmail-data"),
    show_default=True,
    envvar=_env("DATA_DIR"),
    show_envvar=True,
    help="data folder: the embedded server's JetStream store and the SQLite read models",
)
@click.option(
    "--insecure",
    is_flag=True,
    envvar=_env("INSECURE"),
    show_envvar=True,
    help="embedded server without authentication: anyone reaching the port may do anything "
    "(development only; says so on every start)",
)
@creds_option()
@click.option(
    "--store",
    metavar="URL",
    envvar=_env("STORE"),
    show_envvar=True,
    help="read-model store: sqlite:///path (default: readmodels.db in the data folder) or postgresql://...",
)
@click.option(
    "--key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=_env("KEY_DIR"),
    show_envvar=True,
    help="folder of the key-encryption key that wraps every member's data key (default: datakeys in "
    "the data folder); never in a backup; every process of one installation shares it",
)
@click.option(
    "--trust-client-time",
    is_flag=True,
    envvar=_env("TRUST_CLIENT_TIME"),
    show_envvar=True,
    help="honour commands' occurred_at (simulations, imports, tests)",
)
@click.option(
    "--relaxed-fsync",
    is_flag=True,
    envvar=_env("RELAXED_FSYNC"),
    show_envvar=True,
    help="embedded server: fsync on the default interval instead of every write (faster; may lose "
    "acknowledged writes on power loss)",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    envvar=_env("REPLICAS"),
    show_envvar=True,
    help="replicas of the streams and buckets it creates (3 on a 3-node cluster)",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1),
    default=1024,
    show_default=True,
    envvar=_env("MAX_IN_FLIGHT"),
    show_envvar=True,
    help="requests handled concurrently",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    envvar=_env("ROLE"),
    show_envvar=True,
    help="all: commands, projections and queries in one process; commands: the command handlers and "
    "the monthly refresh only (run as many as needed, one queue group); read: the projections and "
    "the query and admin subjects only",
)
@click.option(
    "--new-stream",
    is_flag=True,
    envvar=_env("NEW_STREAM"),
    show_envvar=True,
    help="start over on the events stream as it is now, even if it is not the one this service "
    "recorded (deleted and created again, purged): created when missing, read models rebuilt from it. "
    "Without it, serve refuses such a stream",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    envvar=_env("HTTP_PORT"),
    show_envvar=True,
    help="port of /healthz, /readyz, /metrics and the dashboard at /; 0 turns HTTP off",
)
@click.option(
    "--http-host",
    metavar="HOST",
    default="127.0.0.1",
    show_default=True,
    envvar=_env("HTTP_HOST"),
    show_envvar=True,
    help="address the HTTP port listens on (0.0.0.0: every interface)",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar=_env("LOG_FORMAT"),
    show_envvar=True,
    help="text: lines for people; json: one JSON object a line (level, time, message, and command_id, "
    "seq, trace_id where they apply)",
)
@log_level_option("info")
@click.pass_context
def serve_command(
    ctx: click.Context,
    nats_url: str | None,
    port: int,
    data_dir: Path,
    insecure: bool,
    creds: Path | None,
    store: str | None,
    key_dir: Path | None,
    trust_client_time: bool,
    relaxed_fsync: bool,
    replicas: int,
    max_in_flight: int,
    role: str,
    new_stream: bool,
    http_port: int,
    http_host: str,
    log_format: LogFormat,
    log_level: str,
) -> int:
    """Run the service, its projections and queries.

    Without --nats, starts an embedded nats-server (JetStream, every write fsynced) on --port,
    storing in --data-dir. Every flag can also be set by its INMAIL_* environment variable; a flag
    on the command line wins; a boolean variable is on when set to 1 or true. Tracing is configured
    by OpenTelemetry's own variables (OTEL_TRACES_EXPORTER=otlp or console, OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_SERVICE_NAME, ...) and is off when none is set.
    """
    # INMAIL_NATS_CREDS may be set for the other commands of the same shell; only a --creds
    # typed for serve itself is a mistake with the embedded server.
    typed = ctx.get_parameter_source("creds") is click.core.ParameterSource.COMMANDLINE
    options = ServeOptions(
        nats_url,
        port,
        data_dir,
        insecure,
        creds,
        typed,
        store,
        trust_client_time,
        relaxed_fsync,
        replicas,
        max_in_flight,
        role,
        http_port,
        http_host,
        log_format,
        new_stream,
        key_dir,
    )
    configure_logging(log_level, log_format)
    try:
        return run(serve(options), log_level)
    except CliError as exc:
        if log_format == "json":
            raise JsonCliError(exc.message) from exc
        raise


class JsonCliError(CliError):
    """A one-line error in the JSON log format."""

    def show(self, file: object = None) -> None:
        click.echo(json_line("error", f"inmail: {self.format_message()}"), err=True)
