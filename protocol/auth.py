"""HMAC-SHA256 (RFC 2104) truncated to TAG_LEN bytes, and the errors of push authentication.

MicroPython has hashlib.sha256 but no hmac module, so HMAC is built here from its definition.
The truncation to 96 bits keeps above RFC 2104 section 5's floor of 80 bits.
"""

from hashlib import sha256

from .errors import FrameError

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


TAG_LEN = const(12)
_BLOCK = const(64)  # SHA-256 block size


class AuthError(FrameError):
    """A push frame whose authentication tag is missing or wrong: forged or keyed wrongly."""


class ReplayError(AuthError):
    """A correctly signed push frame whose counter is not newer than the last one accepted."""


class Signer:
    """Holds one key's padded inner and outer blocks, computed once."""

    def __init__(self, key: bytes):
        if not key:
            raise ValueError("an authentication key must not be empty")
        if len(key) > _BLOCK:
            key = sha256(key).digest()
        key = key + bytes(_BLOCK - len(key))
        self._inner = bytes(b ^ 0x36 for b in key)
        self._outer = bytes(b ^ 0x5C for b in key)

    def mac(self, data: "bytes | bytearray | memoryview") -> bytes:
        """Full 32-byte HMAC-SHA256 of data."""
        h = sha256(self._inner)
        h.update(data)
        tag = sha256(self._outer + h.digest()).digest()  # type: bytes
        return tag

    def verify(
        self, data: "bytes | bytearray | memoryview", tag: "bytes | bytearray | memoryview"
    ) -> bool:
        """Constant-time comparison, so timing does not reveal how much of a tag was right."""
        good = self.mac(data)[:TAG_LEN]
        if len(tag) != len(good):
            return False
        diff = 0
        for i in range(len(good)):
            diff |= good[i] ^ tag[i]
        return diff == 0
