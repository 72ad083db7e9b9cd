"""The exception hierarchy shared by firmware and gateway.

Partial input is never an error: decoders return NEED_DATA. Malformed input that arrived from
the other end raises a FrameError. A message we were asked to build that cannot be put on the
wire is a bug or bad argument on our side and raises plain ValueError (Python's idiom; a class
of our own would cost the node heap for no extra information).
"""


class ProtocolError(Exception):
    """Base of every error raised by protocol/."""


class FrameError(ProtocolError):
    """Bytes from the wire that do not form a valid frame (noise, truncation, bad fields)."""


class CRCError(FrameError):
    """A frame whose CRC-16 does not match: line noise or a collision on the bus."""


# AuthError and ReplayError (both FrameErrors) live in auth.py, so that a node in polled mode,
# which never authenticates, does not pay heap for them.


# The third outcome of a decoder: not an error, just not enough bytes yet. A string, not a
# sentinel class, because a class costs a node ~250 bytes of heap; compare with `is`.
NEED_DATA = "NEED_DATA"
