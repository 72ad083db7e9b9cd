from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.backoff import Backoff


def test_ceiling_doubles_to_the_cap_and_reset_starts_over() -> None:
    b = Backoff(base_s=0.5, cap_s=4.0, rand=lambda: 1.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=80))
def test_delays_stay_within_zero_and_the_cap(draws: list[float]) -> None:
    it = iter(draws)
    b = Backoff(base_s=0.1, cap_s=30.0, rand=lambda: next(it))
    for _ in draws:
        assert 0.0 <= b.next() <= 30.0


def test_jitter_spreads_delays() -> None:
    b = Backoff(base_s=1.0, cap_s=1.0)
    assert len({round(b.next(), 6) for _ in range(50)}) > 40


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_bad_parameters_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=base, cap_s=cap)
