"""What the Modbus bus and the push receiver share: the error they raise to callers.

pymodbus and pyserial exceptions are translated where they enter the gateway (STYLE.md lesson
11: `raise LinkError(msg) from exc`), with a message that says what happened and what to do.
Polling and receiving never raise it: they count the failure, mark nodes silent and carry on.
Only calls made on behalf of someone else (a command from upstream) do.
"""

from __future__ import annotations


class LinkError(Exception):
    """A request over a serial line or Modbus TCP link could not be carried out."""


class PortLost(LinkError):
    """The port itself is gone (unplugged, closed, refused): reopened with back-off."""
