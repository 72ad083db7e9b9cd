"""Firelane gateway: polls or receives node data, runs the rule core and forwards alarms over
MQTT. Runs on CPython (a Raspberry Pi in a cabinet)."""

__version__ = "0.1.0"
