"""Codes shared by node and gateway: Modbus function and exception codes, event codes,
event sources, fault kinds, commands and reset causes. Numbers on the wire are defined here and
nowhere else; their names for people are in names.py, which the node does not load.
"""

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


# Modbus function codes (Modbus Application Protocol V1.1b3, 6.3-6.12).
FC_READ_HOLDING = const(0x03)
FC_READ_INPUT = const(0x04)
FC_WRITE_SINGLE = const(0x06)
FC_DIAGNOSTIC = const(0x08)
FC_WRITE_MULTIPLE = const(0x10)

# Modbus exception codes (ibid., 7).
EX_ILLEGAL_FUNCTION = const(0x01)
EX_ILLEGAL_ADDRESS = const(0x02)
EX_ILLEGAL_VALUE = const(0x03)
EX_DEVICE_FAILURE = const(0x04)

# Addresses (Modbus over Serial Line V1.02, 2.2): 0 is broadcast, 1..247 are nodes.
BROADCAST = const(0)
ADDRESS_MAX = const(247)

# Events a node raises, in polled mode through the status registers and in push mode as EVENT
# frames. The gateway forwards them upstream under these names.
EV_ALARM = const(1)
EV_PRE_ALARM = const(2)
EV_FAULT = const(3)
EV_RESTORE = const(4)
EV_BUTTON = const(5)
EV_TEST = const(6)
EV_SILENCED = const(7)

# What raised an event.
SRC_NODE = const(0)
SRC_SMOKE = const(1)
SRC_LEAKAGE = const(2)
SRC_TEMPERATURE = const(3)
SRC_BUTTON = const(4)
SRC_SUPPLY = const(5)

# Fault kinds: bit numbers of the FAULTS register and the detail byte of a FAULT event.
FAULT_SMOKE_DIRTY = const(0)  # drift compensation exhausted: clean or replace the chamber
FAULT_SMOKE_INPUT = const(1)  # chamber input open or shorted
FAULT_CT_OPEN = const(2)  # leakage current transformer open-circuit
FAULT_TEMP_SENSOR = const(3)  # temperature input out of its physical range
FAULT_LOW_SUPPLY = const(4)
FAULT_SELF_TEST = const(5)  # last self-test failed
FAULT_SAFE_MODE = const(6)  # node booted into safe mode after repeated failed boots
FAULT_CONFIG = const(7)  # config on flash invalid; safe defaults in use

# Commands written to the COMMAND register (and sent from upstream through the gateway).
CMD_SILENCE = const(1)
CMD_SELF_TEST = const(2)
CMD_RESET_ALARM = const(3)
CMD_IDENTIFY = const(4)

# Why the node last restarted (RESET_CAUSE register). The ESP32 reports a brownout as power-on;
# the node tells them apart by its supply measurement before the reset (DOMAIN.md).
RESET_POWER_ON = const(1)
RESET_HARD = const(2)
RESET_WATCHDOG = const(3)
RESET_SOFT = const(4)
RESET_BROWNOUT = const(5)
