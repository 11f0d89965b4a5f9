import pytest

from app.batching.policy import client_owns_timeout, priority_level, queue_timeout
from app.errors import InvalidRequest
from app.schema.manifest import BatchingSpec

SPEC = BatchingSpec(priority_levels=3, default_timeout_ms=250)


@pytest.mark.parametrize(
    ("parameters", "level"), [({}, 3), ({"priority": 0}, 3), ({"priority": 1}, 1), ({"priority": 2}, 2)]
)
def test_priority_zero_or_absent_means_the_models_default_level(parameters, level):
    assert priority_level(SPEC, parameters) == level


def test_default_priority_level_can_be_set():
    assert priority_level(BatchingSpec(priority_levels=3, default_priority_level=2), {}) == 2


@pytest.mark.parametrize("value", [4, -1, "high", True, 1.5])
def test_priority_outside_the_levels_is_a_bad_request(value):
    with pytest.raises(InvalidRequest, match="'priority' must be an integer from 0 to 3"):
        priority_level(SPEC, {"priority": value})


def test_timeout_is_microseconds_with_the_models_default():
    assert queue_timeout(SPEC, {"timeout": 20_000}) == 0.02
    assert queue_timeout(SPEC, {}) == 0.25
    assert queue_timeout(BatchingSpec(), {}) is None


@pytest.mark.parametrize("value", [0, -5, "soon", 2.5])
def test_a_bad_timeout_is_a_bad_request(value):
    with pytest.raises(InvalidRequest, match="'timeout' must be a positive integer of microseconds"):
        queue_timeout(SPEC, {"timeout": value})


@pytest.mark.parametrize(
    ("default_ms", "objective_s", "timeout_us", "owned"),
    [
        (0, None, 1, True),  # the server promises nothing: any timeout is the client's choice
        (0, 0.05, 1_000, True),  # 1 ms, under the 50 ms p99 objective: asking for more than promised
        (0, 0.05, 50_000, False),  # at the objective: expiring there means the server is slow
        (100, 0.05, 50_000, True),  # under the model's own default timeout, which is the promise when set
        (100, 0.05, 200_000, False),
    ],
)
def test_a_timeout_is_the_clients_own_only_when_shorter_than_what_the_server_promises(
    default_ms, objective_s, timeout_us, owned
):
    spec = BatchingSpec(max_batch_size=8, default_timeout_ms=default_ms)
    assert client_owns_timeout(spec, {"timeout": timeout_us}, objective_s) is owned
    assert client_owns_timeout(spec, {}, objective_s) is False
