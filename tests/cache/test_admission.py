"""The cache steps aside for traffic that does not repeat and comes back when it does."""

from hypothesis import given
from hypothesis import strategies as st

from app.cache.admission import LOW_HIT_RATIO, PROBE_EVERY, Admission


def _run(admission: Admission, hits: list[bool]) -> int:
    """Feed one request per entry (a hit if it is looked up and would hit); how many were looked up."""
    looked_up = 0
    for hit in hits:
        if admission.admits():
            looked_up += 1
            admission.record(hit)
    return looked_up


def test_unique_traffic_is_looked_up_once_in_sixteen_after_a_few_hundred_misses():
    admission = Admission()
    warm = _run(admission, [False] * 400)
    assert warm == 400 or admission.hit_ratio < LOW_HIT_RATIO
    looked_up = _run(admission, [False] * 16_000)
    assert looked_up == 16_000 // PROBE_EVERY


def test_repeats_found_by_the_probes_turn_lookups_back_on():
    admission = Admission()
    _run(admission, [False] * 2_000)
    assert admission.hit_ratio < LOW_HIT_RATIO
    # 80% of requests now repeat: within a few probes, every request is looked up again.
    probes = 0
    while admission.hit_ratio < LOW_HIT_RATIO:
        probes += _run(admission, [True, True, True, True, False])
    assert probes <= 8
    assert _run(admission, [True, True, True, True, False] * 200) == 1_000


@given(st.lists(st.booleans(), min_size=1, max_size=3_000))
def test_traffic_that_hits_often_is_always_looked_up(prefix):
    admission = Admission()
    _run(admission, prefix)
    # Whatever came before, a stretch where at least one lookup in ten hits ends with every request looked up.
    pattern = [True] + [False] * 9
    _run(admission, pattern * 100)
    assert _run(admission, pattern * 10) == 100
