"""The `firelane` command: entry points, register listing, frame decoding and the demo."""

from __future__ import annotations

import subprocess
import sys
from struct import pack

import pytest

from gateway.cli import main
from protocol import auth, codes, push, registers, rtu
from protocol.modbus import Pdu


def test_python_dash_m_gateway_is_the_firelane_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("firelane ")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_registers_lists_every_register(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registers"]) == 0
    out = capsys.readouterr().out
    assert "0x0044 LEAKAGE_ALARM" in out
    assert "20..1000" in out
    assert len(out.strip().splitlines()) == 1 + len(registers.TABLE) // 8


def test_decode_rtu_capture_with_noise(capsys: pytest.CaptureFixture[str]) -> None:
    capture = rtu.encode(Pdu(17, 3, address=0x6B, count=3)) + b"\xfe\xff"
    capture += rtu.encode(Pdu(17, 3, True, values=(1, 2, 3)))
    assert main(["decode", capture.hex(" ")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "unit 17 request: function=3, address=107, count=3",
        "error: garbage or truncated frame; resynchronising",
        "unit 17 response: function=3, values=(1, 2, 3)",
    ]


def test_decode_push_frame(capsys: pytest.CaptureFixture[str]) -> None:
    payload = pack(push.EVENT_FORMAT, codes.EV_PRE_ALARM, codes.SRC_LEAKAGE, 0, 2, 260, 5)
    wire = push.encode(push.MT_EVENT, 3, 9, payload, auth.Signer(b"k"), 4)
    assert main(["decode", wire.hex()]) == 0
    out = capsys.readouterr().out
    assert "node 3 event seq 9 (signed, counter 4, tag NOT checked: no --key): pre_alarm" in out
    assert main(["decode", "--key", "k", wire.hex()]) == 0
    assert "(signed, counter 4): pre_alarm from leakage" in capsys.readouterr().out
    assert main(["decode", "--key", "wrong", wire.hex()]) == 0
    assert "error: bad authentication tag from node 3" in capsys.readouterr().out


def test_decode_rejects_non_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "not-hex"]) == 2
    assert "not hex" in capsys.readouterr().out


def test_demo_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--tour"]) == 0
    out = capsys.readouterr().out
    assert "every check passed" in out
    assert "ReplayError" in out and "AuthError" in out and "CRCError" in out
