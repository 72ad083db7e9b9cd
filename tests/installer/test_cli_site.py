"""installer/cli_site.py: the three commands are wired into `firelane`, and bad input is one
message and status 2 before any port is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["bus", "scan", "--port", "P"],
        ["node", "set-address", "--port", "P", "--from", "247", "--to", "5"],
        ["walktest", "--config", "gw.toml"],
    ],
)
def test_commands_are_wired(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_scan_defaults() -> None:
    args = build_parser().parse_args(["bus", "scan", "--port", "P"])
    assert (args.baud, args.parity, args.first, args.last) == (None, None, 1, 247)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bus", "scan", "--port", "/dev/null", "--from", "5", "--to", "4"], "addresses are"),
        (["bus", "scan", "--port", "/dev/ttyNOPE"], "/dev/ttyNOPE does not exist"),
        (["bus", "scan", "--port", "/dev/null", "--baud", "1200"], "--baud 1200"),
        (
            ["node", "set-address", "--port", "/dev/null", "--from", "247", "--to", "0"],
            "--to 0: a node address is 1..247",
        ),
        (["walktest", "--config", "/nonexistent/gw.toml"], "no such file"),
        (["walktest", "--config", "x.toml", "--duration", "0"], "--duration 0"),
    ],
)
def test_bad_input(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.startswith("firelane "), err


def test_walktest_names_a_missing_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'site = "s"\ngateway_id = "gw"\n[storage]\npath = "{tmp_path / "db"}"\n'
        '[mqtt]\nhost = "127.0.0.1"\n[[buses]]\nname = "b"\nkind = "rtu"\n'
        f'port = "{tmp_path / "ttyGONE"}"\n'
        '[[nodes]]\nname = "n1"\nbus = "b"\naddress = 1\nhouse = "1"\nzone = "a"\n'
    )
    assert main(["walktest", "--config", str(cfg), "--report", str(tmp_path / "r")]) == 2
    assert "ttyGONE does not exist: plug in the USB-RS485 adapter" in capsys.readouterr().err


def test_walktest_asks_to_stop_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer import walktest

    monkeypatch.setattr(walktest, "service_active", lambda: True)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f'site = "s"\ngateway_id = "gw"\n[storage]\npath = "{tmp_path / "db"}"\n'
        '[mqtt]\nhost = "127.0.0.1"\n[[buses]]\nname = "b"\nkind = "rtu"\nport = "/dev/null"\n'
        '[[nodes]]\nname = "n1"\nbus = "b"\naddress = 1\nhouse = "1"\nzone = "a"\n'
    )
    assert main(["walktest", "--config", str(cfg), "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "the gateway service is running" in err
    assert "stop it first with `sudo systemctl stop firelane-gateway`" in err
