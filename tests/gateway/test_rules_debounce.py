"""Debounce primitives against reference models and their promises (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rules import AlarmDebounce, DelayedOnOff, Hysteresis, NOfM, RateOfRise, threshold

gaps = st.floats(0.01, 5.0)  # time between observations


@given(st.floats(0.1, 20.0), st.lists(st.tuples(gaps, st.booleans()), max_size=60))
def test_delayed_on_turns_on_only_after_holding_on_s(
    on_s: float, obs: list[tuple[float, bool]]
) -> None:
    d = DelayedOnOff(on_s, 0.0)
    at, run_start = 0.0, None  # when the current run of True observations began
    for gap, raw in obs:
        at += gap
        if not raw:
            run_start = None
        elif run_start is None:
            run_start = at
        state = d.update(raw, at)
        held = run_start is not None and at - run_start >= on_s
        assert state == held  # off_s = 0: the state is exactly "held on_s"


@given(st.floats(0.5, 20.0), st.lists(gaps, min_size=1, max_size=40), st.floats(0.0, 0.99))
def test_a_glitch_shorter_than_on_s_never_turns_on(
    on_s: float, steps: list[float], share: float
) -> None:
    d = DelayedOnOff(on_s, 1.0)
    at = 0.0
    d.update(True, at)  # the glitch starts ...
    end = on_s * share
    for gap in steps:  # ... observations and polls inside it see it on ...
        at = min(at + gap, end)
        assert not d.update(True, at)
        assert not d.poll(at)
    assert not d.update(False, end)  # ... and it ends before on_s
    assert not d.poll(end + 100 * on_s)


@given(st.floats(0.0, 20.0), st.lists(gaps, min_size=1, max_size=40))
def test_a_sustained_condition_turns_on_at_the_first_look_after_on_s(
    on_s: float, steps: list[float]
) -> None:
    d = DelayedOnOff(on_s, 3.0)
    at, before, on_at = 0.0, -1.0, None
    if d.update(True, at):
        on_at = at  # on_s = 0: at once
    for gap in [0.0, *steps]:
        at += gap
        if d.poll(at) and on_at is None:
            on_at, before = at, at - gap
        assert d.state == (at >= on_s)
    if at >= on_s:
        assert on_at is not None and before < on_s <= on_at


def test_delayed_off_and_force() -> None:
    d = DelayedOnOff(0.0, 5.0)
    assert d.update(True, 0.0)
    assert d.update(False, 1.0) and d.pending
    assert d.poll(5.9)
    assert not d.poll(6.0) and not d.pending
    d.force(True)
    assert d.state and not d.pending
    with pytest.raises(ValueError, match="on_s"):
        DelayedOnOff(float("nan"), 1.0)


@given(st.integers(1, 8), st.integers(0, 8), st.lists(st.booleans(), max_size=50))
def test_n_of_m_counts_the_last_m(n: int, extra: int, obs: list[bool]) -> None:
    m = n + extra
    f = NOfM(n, m)
    for k, raw in enumerate(obs):
        assert f.update(raw) == (sum(obs[max(0, k + 1 - m) : k + 1]) >= n)
    assert f.value == (sum(obs[-m:]) >= n)
    f.fill(True)
    assert f.value


@pytest.mark.parametrize(("n", "m"), [(0, 1), (3, 2), (1, 65)])
def test_n_of_m_refuses_bad_sizes(n: int, m: int) -> None:
    with pytest.raises(ValueError, match="n <= m"):
        NOfM(n, m)


values = st.floats(-1000, 1000)


@given(values, st.floats(0, 100), st.booleans(), st.lists(values, max_size=50))
def test_hysteresis_matches_its_reference(
    level: float, band: float, rising: bool, xs: list[float]
) -> None:
    off = level - band if rising else level + band
    h = Hysteresis(level, off, rising)
    state = False
    for x in xs:
        edge = off if state else level  # on: watch the release level; off: the threshold
        state = x >= edge if rising else x <= edge
        assert h.update(x) == state
        assert threshold(x, level, rising) == (x >= level if rising else x <= level)


def test_hysteresis_holds_inside_the_band_and_refuses_an_inverted_band() -> None:
    h = Hysteresis(500, 450)
    assert [h.update(x) for x in (499, 500, 460, 451, 449, 499)] == [0, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="release level"):
        Hysteresis(500, 550)
    with pytest.raises(ValueError, match="release level"):
        Hysteresis(10.8, 10.0, rising=False)


@given(st.floats(-30, 30), st.floats(0.5, 10), st.floats(20, 300))
def test_rate_of_a_ramp_is_its_slope(slope: float, dt: float, window: float) -> None:
    rate = RateOfRise(window)
    seen = []
    for k in range(int(3 * window / dt) + 5):
        got = rate.update(20.0 + slope * k * dt / 60, k * dt)
        if got is not None:
            seen.append(got)
    assert seen  # min_span_s (half the window) was reached
    assert all(got == pytest.approx(slope, abs=1e-6) for got in seen)


@given(st.floats(-1e4, 1e4), st.integers(3, 200), st.floats(0.5, 5))
def test_one_wild_sample_never_shows_as_a_rate(spike: float, where: int, dt: float) -> None:
    rate = RateOfRise(60.0)
    for k in range(300):
        got = rate.update(spike if k == where else 21.0, k * dt)
        assert got in (None, 0.0)


def test_rate_needs_history_and_forgets_a_gap() -> None:
    rate = RateOfRise(60.0)
    # The first median (k = 2) is the first point; 30 s later (half the window) a rate.
    got = [rate.update(20.0 + k, k * 10.0) for k in range(6)]
    assert got == [None, None, None, None, None, pytest.approx(6.0)]
    assert rate.update(100.0, 1000.0) is None  # a long gap: no point left in the window
    with pytest.raises(ValueError, match="min_span_s"):
        RateOfRise(60.0, 90.0)


@given(st.lists(st.tuples(gaps, st.sampled_from([True, False, None])), max_size=80))
def test_alarm_debounce_turns_on_at_once_and_restores_only_on_a_quorum(
    obs: list[tuple[float, bool | None]],
) -> None:
    d = AlarmDebounce(0.0, 5.0, 2, 3)
    at, history, quorum_since = 0.0, [], None
    for gap, raw in obs:  # raw None: a poll (time passes)
        at += gap
        was = d.state
        state = d.poll(at) if raw is None else d.update(raw, at)
        if raw is not None:
            history.append(raw)
        if raw and not was:
            assert state  # on at the first sample that shows it
            history = [True]  # the clear samples of an earlier alarm do not count
        if was and not state:  # off: 2 of the last 3 clear, held 5 s
            assert sum(not x for x in history[-3:]) >= 2
            assert quorum_since is not None and at - quorum_since >= 5.0
        quorum = state and sum(not x for x in history[-3:]) >= 2
        if not quorum:
            quorum_since = None
        elif quorum_since is None:
            quorum_since = at


def test_a_new_alarm_starts_with_no_clear_samples() -> None:
    d = AlarmDebounce(0.0, 5.0, 2, 3)
    for t, raw in enumerate([True, False, False, False, False, False, False, False]):
        d.update(raw, float(t))
    assert not d.state  # restored at t = 7
    assert d.update(True, 8.0) and d.update(True, 9.0)
    assert d.poll(100.0)  # still on: the old clears are forgotten


def test_alarm_debounce_ignores_one_corrupted_clear_poll() -> None:
    d = AlarmDebounce(0.0, 5.0, 2, 3)
    assert d.update(True, 0.0)
    assert d.update(False, 1.0)  # one bad poll ...
    assert not d.settled
    for t in range(2, 60):
        assert d.update(True, float(t))  # ... among good ones never restores
    assert d.settled
    assert d.update(False, 60.0) and d.update(False, 61.0)  # the quorum: 5 s from here
    assert d.poll(65.9) and not d.poll(66.0)
    d.force(True)
    assert d.state and d.settled
