"""The ``inmail`` command line's configuration: flags, their INMAIL_* variables, one-line errors."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from inmail.cli import cli, main
from inmail.cli.serve import serve_command
from inmail.cli.serving import ServeOptions


def _serve_options(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServeOptions:
    """The options ``inmail serve`` would run with, parsed as click parses them (nothing started)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with serve_command.make_context("serve", args) as ctx:
        params = dict(ctx.params)
        typed = ctx.get_parameter_source("creds") is click.core.ParameterSource.COMMANDLINE
    params.pop("log_level")
    return ServeOptions(**params, creds_from_command_line=typed)


def test_every_serve_flag_has_its_inmail_variable() -> None:
    for param in serve_command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        flag = next(opt for opt in param.opts if opt.startswith("--"))
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        assert "INMAIL_" + flag[2:].upper().replace("-", "_") in names, flag
        assert param.show_envvar, flag


def test_variables_configure_serve_and_a_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "INMAIL_NATS": "nats://nats.example:4222",
        "INMAIL_PORT": "4333",
        "INMAIL_DATA_DIR": "/srv/inmail",
        "INMAIL_STORE": "postgresql://db/inmail",
        "INMAIL_TRUST_CLIENT_TIME": "true",
        "INMAIL_RELAXED_FSYNC": "1",
        "INMAIL_REPLICAS": "3",
        "INMAIL_MAX_IN_FLIGHT": "64",
        "INMAIL_ROLE": "read",
        "INMAIL_INSECURE": "0",
        "INMAIL_HTTP_PORT": "9090",
        "INMAIL_HTTP_HOST": "0.0.0.0",
        "INMAIL_LOG_FORMAT": "json",
    }
    options = _serve_options([], env, monkeypatch)
    assert options == ServeOptions(
        nats_url="nats://nats.example:4222",
        port=4333,
        data_dir=Path("/srv/inmail"),
        insecure=False,
        creds=None,
        creds_from_command_line=False,
        store="postgresql://db/inmail",
        trust_client_time=True,
        relaxed_fsync=True,
        replicas=3,
        max_in_flight=64,
        role="read",
        http_port=9090,
        http_host="0.0.0.0",
        log_format="json",
    )
    assert _serve_options(["--port", "4444", "--role", "commands"], env, monkeypatch).port == 4444
    assert _serve_options(["--role", "commands"], env, monkeypatch).role == "commands"
    flags = ["--http-port", "0", "--http-host", "::1", "--log-format", "text"]
    given = _serve_options(flags, env, monkeypatch)
    assert (given.http_port, given.http_host, given.log_format) == (0, "::1", "text")


def test_a_boolean_variable_is_off_unless_one_or_true(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _serve_options([], {"INMAIL_TRUST_CLIENT_TIME": "0"}, monkeypatch).trust_client_time is False
    assert _serve_options([], {"INMAIL_TRUST_CLIENT_TIME": "false"}, monkeypatch).trust_client_time is False


def test_defaults_without_flags_or_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for param in serve_command.params:
        if isinstance(param.envvar, str):
            monkeypatch.delenv(param.envvar, raising=False)
    options = _serve_options([], {}, monkeypatch)
    assert (options.nats_url, options.port, options.data_dir, options.role) == (
        None,
        4222,
        Path("inmail-data"),
        "all",
    )
    assert (options.http_port, options.http_host, options.log_format) == (8080, "127.0.0.1", "text")


def test_help_shows_each_flag_with_its_variable() -> None:
    ctx = click.Context(serve_command, info_name="serve")
    text = serve_command.get_help(ctx)
    for name in (
        "--nats",
        "INMAIL_NATS",
        "--data-dir",
        "INMAIL_DATA_DIR",
        "--role",
        "INMAIL_ROLE",
        "--http-port",
        "INMAIL_HTTP_PORT",
        "--log-format",
        "INMAIL_LOG_FORMAT",
        "OTEL_TRACES_EXPORTER",
    ):
        assert name in text


def test_every_command_reads_inmail_nats_and_inmail_nats_creds() -> None:
    commands = dict(cli.commands)
    for name, command in list(commands.items()):
        if isinstance(command, click.Group):
            del commands[name]
            commands.update({f"{name} {sub}": c for sub, c in command.commands.items()})
    # These work on the data folder's keys or a file alone, without a server; `cluster up` starts servers.
    for local in ("creds issue", "creds list", "creds server-config", "cluster up"):
        del commands[local]
    for local in ("policy show", "policy check"):
        del commands[local]
    for name, command in commands.items():
        nats = [p for p in command.params if p.name == "nats_url"]
        assert nats and nats[0].envvar == "INMAIL_NATS", name
        if name == "creds revoke":
            continue  # it speaks to the server with the folder's own system account, no role's file
        creds = [p for p in command.params if p.name == "creds"]
        assert creds and "INMAIL_NATS_CREDS" in (creds[0].envvar or []), name


def test_a_bad_argument_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--from-seq", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--from-seq" in err[0] and "inmail replay" in err[0]
    assert main(["serve", "--role", "everything"]) == 2
    assert main(["no-such-command"]) == 2


def test_an_unreachable_server_is_named_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--nats", "nats://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nats://127.0.0.1:9" in err[0]
