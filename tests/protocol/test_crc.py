"""CRC-16/MODBUS against its catalogue check value and its own incremental form."""

from hypothesis import given
from hypothesis import strategies as st

from protocol.crc import append_crc, check_crc, crc16


def test_catalogue_check_value() -> None:
    # The CRC RevEng catalogue's check value for CRC-16/MODBUS over "123456789".
    assert crc16(b"123456789") == 0x4B37


@given(st.binary(), st.binary())
def test_chunks_continue(a: bytes, b: bytes) -> None:
    assert crc16(b, crc=crc16(a)) == crc16(a + b)


@given(st.binary(max_size=300))
def test_append_then_check(data: bytes) -> None:
    framed = append_crc(data)
    assert check_crc(framed, 0, len(framed))
    assert crc16(framed) == 0  # a frame with its CRC appended has a zero residue


@given(st.binary(min_size=1, max_size=100), st.integers(0, 7), st.data())
def test_any_single_bit_flip_is_detected(data: bytes, bit: int, draw: st.DataObject) -> None:
    framed = bytearray(append_crc(data))
    i = draw.draw(st.integers(0, len(framed) - 1))
    framed[i] ^= 1 << bit
    assert not check_crc(framed, 0, len(framed))
