"""The real firmware on the emulated board, end to end: what the house hears and sees, and what
the gateway reads, when the board's inputs say fire, leakage, a button press or a fault.

The node is polled by pymodbus over its pty (push mode: read raw with pyserial and decoded with
protocol.push); its inputs are driven and its LED, buzzer and clock read through the control
socket. Waits poll with a deadline; time windows are measured on the board's clock (uptime_ms).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial  # type: ignore[import-untyped]

from hil_tests.emulator.control import Control
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.node_helpers import (
    UNIT,
    Block,
    Bus,
    buzzer,
    emulated_node,
    led,
    node_id,
    uptime_ms,
    wait_tone,
    wait_until,
    wait_uptime,
)
from protocol import codes, push
from protocol import registers as r
from protocol.auth import Signer
from protocol.errors import NEED_DATA

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
SMOKE_FIRE = 3.0  # %/m, above SMOKE_ALARM (2.40 %/m)
ALARM_TONE_MS = 450  # temporal-three tones are 500 ms; the self-test beep and chirps 250 ms


def bit(n: int) -> int:
    return 1 << n


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulated_node(tmp_path) as emu:
        yield emu


# 1. Smoke: the local alarm needs no gateway; the gateway sees it; it restores by itself.
def test_smoke_fire_sounds_locally_unpolled_then_restores(node: EmulatorProcess) -> None:
    with node.control() as ctl:
        ctl.set(smoke_pct=SMOKE_FIRE)
        # Nobody on the bus: only the board's own outputs say what happens.
        tone = wait_tone(ctl, ALARM_TONE_MS, timeout=10.0)
        assert tone.ms <= 650, f"a temporal-three tone is 0.5 s, heard {tone.ms} ms"
        assert led(tone.before)["level"] == led(tone.after)["level"] == 1, "LED not on"
        assert led(tone.after)["transitions"] == led(tone.before)["transitions"], "LED blinks"
        assert tone.after["uart"]["rx_bytes"] == 0, "someone talked to the node"

        with Bus(node.serial) as bus:
            block = bus.block()
            assert block.status & r.ST_ALARM and block.status & r.ST_SOUNDING, block
            assert block.sources == bit(codes.SRC_SMOKE), block
            assert block.seq == 2, f"power-up self-test and smoke alarm: {block}"
            assert abs(block.smoke - round(SMOKE_FIRE * 100)) <= 5, block

            cleared_at = uptime_ms(ctl)
            ctl.set(smoke_pct=0.0)
            block = bus.poll(lambda b: not b.status & r.ST_ALARM, 9.0, "smoke alarm restores")
            held = uptime_ms(ctl) - cleared_at
            assert 5000 <= held <= 7500, f"restored {held} ms after the smoke cleared (5 s delay)"
            assert block.sources == 0 and not block.status & r.ST_SOUNDING, block
            assert block.seq == 3, f"one restore event: {block}"


# 2. Hush, and a fresh worse condition sounds again at once.
def test_hush_quiets_the_buzzer_until_a_new_source_alarms(node: EmulatorProcess) -> None:
    with node.control() as ctl, Bus(node.serial) as bus:
        bus.write(r.LEAKAGE_ALARM_DELAY, 0)  # the leakage alarm at its first window
        ctl.set(smoke_pct=SMOKE_FIRE)
        wait_tone(ctl, ALARM_TONE_MS, timeout=10.0)  # the alarm sounds
        before = bus.block()
        assert before.status & r.ST_SOUNDING, before

        bus.command(codes.CMD_SILENCE)
        block = bus.block()
        assert block.status & r.ST_SILENCED and block.status & r.ST_ALARM, block
        assert not block.status & r.ST_SOUNDING, block
        assert block.seq == before.seq + 1, f"one silenced event: {before} -> {block}"

        # A temporal-three frame is 4 s: over 4.5 s an unhushed buzzer sounds at least once.
        quiet = ctl.wait_state(lambda s: buzzer(s)["level"] == 0, 1.0)
        end = wait_uptime(ctl, quiet["uptime_ms"] + 4500)
        assert buzzer(end)["transitions"] == buzzer(quiet)["transitions"], "buzzer sounded"
        assert buzzer(end)["high_ms"] == buzzer(quiet)["high_ms"], "buzzer sounded"
        assert led(end)["transitions"] - led(quiet)["transitions"] >= 8, "no 2 Hz blink"
        assert bus.block().status & r.ST_SILENCED, "the hush ended early"

        ctl.set(leakage_ma=500)
        block = bus.poll(lambda b: bool(b.sources & bit(codes.SRC_LEAKAGE)), 3.0, "leakage alarm")
        assert block.status & r.ST_SOUNDING and not block.status & r.ST_SILENCED, block
        start = ctl.state()
        again = ctl.wait_state(lambda s: buzzer(s)["transitions"] > buzzer(end)["transitions"], 4.5)
        # The longest quiet part of temporal-three is 1.5 s: the next tone slot, not later.
        waited = again["uptime_ms"] - start["uptime_ms"]
        assert waited <= 1800, f"the buzzer sounded again only after {waited} ms"


# 3. The manual call point: a deliberate press latches until reset_alarm; a short one is an
# event, not an alarm.
def test_manual_button_latches_and_short_press_is_only_an_event(node: EmulatorProcess) -> None:
    with node.control() as ctl, Bus(node.serial) as bus:
        ctl.set(button=True)
        wait_uptime(ctl, uptime_ms(ctl) + 700)
        ctl.set(button=False)
        released = uptime_ms(ctl)
        block = bus.poll(lambda b: bool(b.status & r.ST_ALARM), 2.0, "manual alarm")
        assert block.sources == bit(codes.SRC_BUTTON), block
        wait_uptime(ctl, released + 300)  # well past the 50 ms debounce of the release
        block = bus.block()
        assert block.sources == bit(codes.SRC_BUTTON), f"not latched after release: {block}"

        bus.command(codes.CMD_RESET_ALARM)
        block = bus.block()
        assert block.sources == 0 and not block.status & r.ST_ALARM, block

        # Alarm, restore and the power-up self-test's result, in whatever order.
        before = bus.settled(3)
        ctl.set(button=True)
        wait_uptime(ctl, uptime_ms(ctl) + 150)
        ctl.set(button=False)
        block = bus.poll(lambda b: b.seq != before.seq, 2.0, "a button event")
        assert block.seq == before.seq + 1, block
        released = uptime_ms(ctl)
        wait_uptime(ctl, released + 600)  # a press that became an alarm would show by now
        block = bus.block()
        assert block.sources == 0 and not block.status & r.ST_ALARM, block
        assert block.seq == before.seq + 1, block


def test_reset_alarm_while_the_call_point_is_still_held_keeps_the_alarm(
    node: EmulatorProcess,
) -> None:
    """registers.md: reset_alarm clears "a latched alarm whose cause has gone". An EN 54-11
    call point stays activated until it is reset with its key; while it is, a remote reset
    must not leave the house with no alarm (refused, or latched again within HOLD_MS)."""
    with node.control() as ctl, Bus(node.serial) as bus:
        ctl.set(button=True)
        bus.poll(lambda b: bool(b.sources & bit(codes.SRC_BUTTON)), 3.0, "manual alarm")
        bus.command(codes.CMD_RESET_ALARM)
        wait_uptime(ctl, uptime_ms(ctl) + 700)  # more than HOLD_MS (0.5 s), still held
        block = bus.block()
        assert block.sources & bit(codes.SRC_BUTTON), f"call point held, no alarm: {block}"


# 4 and 5. Faults are faults, never alarms, and fail a commanded self-test (one node: the
# self-test's 3 s double as the window in which a shorted chamber would have alarmed).
def test_input_faults_never_alarm_and_fail_the_commanded_self_test(
    node: EmulatorProcess,
) -> None:
    with node.control() as ctl, Bus(node.serial) as bus:
        start = bus.settled(1)  # the power-up self-test, passed
        assert start.faults == 0 and start.status == 0, start

        seen: list[Block] = []

        def watched() -> Block:
            block = bus.block()
            seen.append(block)
            return block

        began = uptime_ms(ctl)
        # The CT unplugged, and a shorted chamber (at the rail: it would read ~58 %/m).
        ctl.set(ct_open=True, smoke_input="short")
        want = bit(codes.FAULT_SMOKE_INPUT) | bit(codes.FAULT_CT_OPEN)
        block = wait_until(watched, lambda b: b.faults & want == want, 3.0, "input faults")
        assert uptime_ms(ctl) - began <= 2500, "the faults took more than ~2 s"
        assert block.status & r.ST_FAULT, block
        assert block.smoke == 0 and block.leakage == 0, f"a faulty input has no reading: {block}"
        assert block.seq == 3, f"two fault events: {block}"

        beeps = buzzer(ctl.state())["transitions"]
        bus.command(codes.CMD_SELF_TEST)
        tested = uptime_ms(ctl)
        assert watched().status & r.ST_TEST
        block = wait_until(watched, lambda b: not b.status & r.ST_TEST, 5.0, "test ends")
        ended = uptime_ms(ctl)
        assert 2900 <= ended - tested <= 4500, f"the self-test took {ended - tested} ms"
        assert buzzer(ctl.state())["transitions"] - beeps >= 4, "a commanded test beeps"
        assert block.faults == want | bit(codes.FAULT_SELF_TEST), block
        assert block.seq == 5, f"a test event and a self_test_failed fault: {block}"

        assert ended - began >= 3500, "watched too briefly to rule out a smoke alarm"
        alarmed = [b for b in seen if b.sources or b.status & (r.ST_ALARM | r.ST_PRE_ALARM)]
        assert not alarmed, f"a faulty input raised an alarm: {alarmed[0]}"


@pytest.mark.slow
def test_low_supply_after_10_s_and_back(node: EmulatorProcess) -> None:
    with node.control() as ctl, Bus(node.serial) as bus:
        began = uptime_ms(ctl)
        ctl.set(supply_v=9.0)
        low = bit(codes.FAULT_LOW_SUPPLY)
        block = bus.poll(lambda b: bool(b.faults & low), 14.0, "low supply")
        took = uptime_ms(ctl) - began
        assert 10_000 <= took <= 12_500, f"low supply after {took} ms (10 s delay)"
        assert block.status & r.ST_LOW_SUPPLY and block.status & r.ST_FAULT, block
        assert not block.status & r.ST_ALARM and block.sources == 0, block
        assert abs(block.supply - 9000) <= 50, block

        began = uptime_ms(ctl)
        ctl.set(supply_v=12.0)
        block = bus.poll(lambda b: not b.faults & low, 14.0, "supply recovers")
        took = uptime_ms(ctl) - began
        assert 10_000 <= took <= 12_500, f"low supply cleared after {took} ms (10 s delay)"
        assert not block.status & r.ST_LOW_SUPPLY, block


# 6. Config writes persist across a reset; a new address takes effect after the reply.
def test_address_and_threshold_writes_survive_a_hard_reset(node: EmulatorProcess) -> None:
    new = 42

    def only_new_answers(bus: Bus, ctl: Control) -> None:
        """A read at the old address, then one at the new: the node sent one reply."""
        sent = ctl.state()["uart"]["tx_bytes"]
        bus.client.read_holding_registers(
            r.ADDRESS, count=1, device_id=UNIT, no_response_expected=True
        )
        assert bus.read(r.ADDRESS, unit=new) == [new]
        assert ctl.state()["uart"]["tx_bytes"] - sent == 7, "the old address answered too"

    with node.control() as ctl, Bus(node.serial) as bus:
        bus.write(r.LEAKAGE_ALARM, 400)
        reply = bus.write(r.ADDRESS, new)
        assert reply.dev_id == UNIT, "the reply to an address change comes from the old one"
        only_new_answers(bus, ctl)

        mark = node.mark()
        ctl.reset("hard")
        node.wait_event("uart", since=mark)
        assert bus.read(r.LEAKAGE_ALARM, unit=new) == [400]
        assert bus.read(r.RESET_CAUSE, unit=new) == [codes.RESET_HARD]
        only_new_answers(bus, ctl)


# 7. Push mode: heartbeats, an alarm retransmitted until a signed ACK, a forged ACK ignored.
KEY = bytes(range(1, 17))
FORGED_KEY = bytes(range(101, 117))

Match = Callable[[push.Frame, int], bool]


class PushPort:
    """The gateway's end of a push-mode node's line: raw bytes in, decoded frames out, each
    with its end as a count of bytes read (which lines up with the board's uart tx_bytes)."""

    def __init__(self, path: Path, decoder: push.PushDecoder) -> None:
        self.port = serial.Serial(str(path), timeout=0.02)
        self.decoder = decoder
        self.received = 0
        self.seen: list[tuple[push.Frame, int]] = []
        self._buf = b""

    def close(self) -> None:
        self.port.close()

    def send(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self) -> list[tuple[push.Frame, int]]:
        """The frames completed by what arrives within the port's timeout."""
        data: bytes = self.port.read(max(1, self.port.in_waiting))
        end = self.received - len(self._buf)  # where self._buf begins in the stream
        self.received += len(data)
        self._buf += data
        out = []
        while b"\x00" in self._buf:
            chunk, self._buf = self._buf.split(b"\x00", 1)
            end += len(chunk) + 1
            assert self.decoder.feed(chunk + b"\x00") == len(chunk) + 1
            frame = self.decoder.next_event()  # a FrameError fails the test: no garbage here
            if frame is not NEED_DATA:
                assert isinstance(frame, push.Frame)
                out.append((frame, end))
                self.seen.append((frame, end))
        return out

    def wait(self, match: Match, timeout: float, what: str) -> push.Frame:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame, end in self.read():
                if match(frame, end):
                    return frame
        raise AssertionError(f"{what}: not within {timeout} s; frames: {self.describe()}")

    def drain_to(self, sent: int, timeout: float = 2.0) -> None:
        """Read everything the board had sent when its tx_bytes was sent."""
        deadline = time.monotonic() + timeout
        while self.received < sent:
            assert time.monotonic() < deadline, f"{self.received} of {sent} bytes arrived"
            self.read()
        assert any(end == sent for _, end in self.seen), (
            f"stream out of step with the board's tx_bytes {sent}: {self.describe()}"
        )

    def describe(self) -> str:
        return ", ".join(
            f"(type {f.type} seq {f.seq} ctr {f.counter} @{end})" for f, end in self.seen[-20:]
        )


def test_push_mode_alarm_is_resent_until_a_signed_ack(tmp_path: Path) -> None:
    config = {
        "address": 5,
        "link_mode": "push",
        "heartbeat_s": 5,
        "key": KEY.hex(),
        "leakage_alarm_delay_s": 0,  # the alarm at the first CT window
    }
    with emulated_node(tmp_path, config=config, wait_uart=False) as node:
        nid = node_id(node.wait_event("ready"))
        assert nid == 0x1A000005  # unique_id 02:f1:1a:00:00:05, derived from address 5
        line = PushPort(node.serial, push.PushDecoder({nid: Signer(KEY)}))
        try:
            with node.control() as ctl:
                push_scenario(node, ctl, line, nid)
        finally:
            line.close()


def push_scenario(node: EmulatorProcess, ctl: Control, line: PushPort, nid: int) -> None:
    node.wait_event("uart")
    beat = line.wait(lambda f, _: f.type == push.MT_HEARTBEAT, 3.0, "a heartbeat")
    assert beat.node_id == nid and beat.counter is not None, "heartbeat unsigned"
    block = struct.unpack(push.HEARTBEAT_FORMAT, beat.payload)
    assert block[1] == 0 and block[2] == 0, f"no alarm, no fault: {block}"

    def is_alarm(f: push.Frame, _: int) -> bool:
        if f.type != push.MT_EVENT:
            return False
        code, source = struct.unpack(push.EVENT_FORMAT, f.payload)[:2]
        return bool(code == codes.EV_ALARM and source == codes.SRC_LEAKAGE)

    ctl.set(leakage_ma=500)
    alarm = line.wait(is_alarm, 3.0, "the leakage alarm")
    _, _, detail, status, value, _ = struct.unpack(push.EVENT_FORMAT, alarm.payload)
    assert detail == 0 and status & r.ST_ALARM and abs(value - 500) <= 10, (status, value)
    seq = alarm.seq

    def resent(after: int) -> Match:
        return lambda f, end: f.type == push.MT_EVENT and f.seq == seq and end > after

    again = line.wait(resent(0), 2.0, "the alarm, unACKed, resent")
    assert again.payload == alarm.payload
    assert again.counter is not None and alarm.counter is not None
    assert again.counter > alarm.counter, "a retransmission takes a new counter"

    def deliver(frame: bytes) -> int:
        """Send a frame; once the firmware has read it, the board's tx_bytes: everything after
        that was sent after the node had the frame in hand."""
        got = ctl.state()["uart"]["rx_bytes"]
        line.send(frame)
        state = ctl.wait_state(lambda s: s["uart"]["rx_bytes"] >= got + len(frame), 2.0)
        sent: int = state["uart"]["tx_bytes"]
        line.drain_to(sent)
        return sent

    # A forged ACK, with a counter far ahead: it neither stops the alarm nor moves the replay
    # guard (else the genuine ACK below, counter 1, would be refused as a replay).
    ack = struct.pack(">H", seq)
    sent = deliver(push.encode(push.MT_ACK, nid, 1, ack, Signer(FORGED_KEY), 0xFFFFFF00))
    line.wait(resent(sent), 6.0, "the alarm resent after a forged ACK")

    # The gateway's ACK stops it. The unACKed heartbeats and test event go on being resent.
    sent = deliver(push.encode(push.MT_ACK, nid, 2, ack, Signer(KEY), 1))
    tries = sum(1 for f, _ in line.seen if f.type == push.MT_EVENT and f.seq == seq)
    backoff_ms = min(250 << (tries - 1), 5000) + 250  # pushlink: doubling, capped, + jitter
    until = ctl.state()["uptime_ms"] + backoff_ms + 1000
    others = 0
    while ctl.state()["uptime_ms"] < until:
        for f, end in line.read():
            assert end > sent
            assert not (f.type == push.MT_EVENT and f.seq == seq), (
                f"alarm seq {seq} resent after its ACK; frames: {line.describe()}"
            )
            others += 1
    assert others, f"the node went silent altogether: {line.describe()}"


# 8. A task that dies stops the watchdog's feeding; repeated failed boots end in safe mode.
DIE_AFTER_MS = 2000
# An installer's settings that safe mode sets aside (factory SMOKE_ALARM is 240).
INSTALLED = {"address": UNIT, "smoke_alarm_pct_m": 3.0, "house": "No. 7 Lantern Lane"}


def dying_button(after_ms: int) -> str:
    """firmware/button.py, except that Button.update raises once the board has run after_ms:
    the io task dies (flash files override firmware/ ones)."""
    source = (FIRMWARE / "button.py").read_text()
    anchor = "    def update(self, now: int, pressed: bool) -> int:\n"
    assert anchor in source, "button.py changed: update the fault injection"
    inject = f"        if now > {after_ms}:\n            raise RuntimeError('io task dies')\n"
    return source.replace(anchor, anchor + inject)


def u32(words: list[int]) -> int:
    return words[0] << 16 | words[1]


@pytest.mark.slow
def test_dead_task_starves_the_watchdog_and_failed_boots_end_in_safe_mode(
    tmp_path: Path,
) -> None:
    files = {"button.py": dying_button(DIE_AFTER_MS)}
    with (
        emulated_node(tmp_path, config=INSTALLED, files=files) as node,
        node.control() as ctl,
        Bus(node.serial) as bus,
    ):
        for boot in (1, 2, 3):
            mark = node.mark()
            assert bus.read(r.BOOT_FAILURES) == [boot]
            # After 2 s the io task is dead: LED and buzzer frozen; sense and link go on.
            frozen = wait_uptime(ctl, DIE_AFTER_MS + 500)
            up = u32(bus.read(r.UPTIME, 2))
            later = wait_uptime(ctl, frozen["uptime_ms"] + 1500)
            for out in ("led", "buzzer"):  # high_ms grows if it died with the buzzer on
                assert later["outputs"][out] | {"high_ms": 0} == frozen["outputs"][out] | {
                    "high_ms": 0
                }, f"the {out} still changes: the io task is alive"
            assert u32(bus.read(r.UPTIME, 2)) > up, "the sense task died too"
            assert later["watchdog_ms"] > 0, later

            ran = [later["uptime_ms"]]  # how long this boot lasted, as last seen

            def rebooted(s: dict[str, Any], boot: int = boot, ran: list[int] = ran) -> bool:
                if s["boots"] == boot:
                    ran[0] = s["uptime_ms"]
                return bool(s["boots"] > boot)

            ctl.wait_state(rebooted, 25.0, poll_s=0.1)
            reset = node.wait_event("reset", since=mark)
            assert reset["cause"] == "WDT_RESET", reset
            # Fed until the io task has stalled 5 s, then the watchdog's own 8 s.
            assert ran[0] >= DIE_AFTER_MS + 8000, f"reset after {ran[0]} ms"
            node.wait_event("uart", since=mark)
            assert bus.read(r.RESET_CAUSE) == [codes.RESET_WATCHDOG]

        # The fourth boot in a row that never ran a healthy minute: safe mode, on the factory
        # settings but the link ones.
        block = bus.block()
        assert block.status & r.ST_SAFE_MODE, block
        assert block.faults & bit(codes.FAULT_SAFE_MODE), block
        assert bus.read(r.BOOT_FAILURES) == [4]
        assert bus.read(r.SMOKE_ALARM) == [240], "safe mode runs on the factory thresholds"
        assert ctl.state()["mode"] == "safe"

        # A power cycle (RTC memory lost) leaves safe mode, back on the installer's settings.
        mark = node.mark()
        ctl.power(False)
        ctl.power(True)
        node.wait_event("uart", since=mark)
        block = bus.block()
        assert not block.status & r.ST_SAFE_MODE and not block.faults, block
        assert bus.read(r.BOOT_FAILURES) == [1]
        assert bus.read(r.RESET_CAUSE) == [codes.RESET_POWER_ON]
        assert bus.read(r.SMOKE_ALARM) == [300]
        assert ctl.state()["mode"] == "normal"


@pytest.mark.slow
def test_a_write_in_safe_mode_keeps_the_installers_config(tmp_path: Path) -> None:
    files = {"button.py": dying_button(0)}  # the io task dies at once: quicker failed boots
    with (
        emulated_node(tmp_path, config=INSTALLED, files=files) as node,
        node.control() as ctl,
        Bus(node.serial) as bus,
    ):
        for _ in range(3):
            mark = node.mark()
            node.wait_event("reset", timeout=25.0, since=mark, cause="WDT_RESET")
            node.wait_event("uart", since=mark)
        assert bus.block().status & r.ST_SAFE_MODE

        bus.write(r.LEAKAGE_ALARM, 350)  # say the gateway re-applies a threshold
        saved = json.loads((node.fs / "config.json").read_text())
        assert saved["leakage_alarm_ma"] == 350
        kept = {k: saved.get(k) for k in INSTALLED}
        assert kept == INSTALLED, "the installer's settings were overwritten by the defaults"

        mark = node.mark()
        ctl.power(False)
        ctl.power(True)
        node.wait_event("uart", since=mark)
        assert bus.read(r.SMOKE_ALARM) == [300], "normal mode on the factory threshold"
