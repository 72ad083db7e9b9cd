"""Hardware-in-the-loop scenarios: the real firmware on emulated boards (hil_tests/emulator/)."""
