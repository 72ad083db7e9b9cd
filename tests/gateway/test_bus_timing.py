"""Wire time against the ceiling table in ../shared/DOMAIN.md and the spec's t3.5."""

import pytest

from gateway.bus_timing import ceiling_per_s
from protocol.timing import char_time_us, t35_us

# ../shared/DOMAIN.md, "Modbus RTU over RS-485": transactions/s for 1, 8 and 32 registers.
DOMAIN_CEILING = {
    9600: (39.7, 24.2, 10.4),
    19200: (79.3, 48.5, 20.8),
    38400: (128.3, 84.7, 39.1),
    115200: (202.7, 159.5, 92.1),
}


@pytest.mark.parametrize("baud", sorted(DOMAIN_CEILING))
def test_ceiling_matches_domain_table(baud: int) -> None:
    for registers, expected in zip((1, 8, 32), DOMAIN_CEILING[baud], strict=True):
        assert ceiling_per_s(baud, registers) == pytest.approx(expected, abs=0.06)


def test_silence_times() -> None:
    # Modbus over Serial Line V1.02, 2.5.1.1: 3.5 characters, fixed 1750 us above 19200 baud.
    assert t35_us(9600) == 4011  # 3.5 x 11 bits / 9600 baud = 4010.4 us, rounded up
    assert t35_us(19200) == 2006
    assert t35_us(38400) == t35_us(115200) == 1750
    assert char_time_us(115200) == 96
