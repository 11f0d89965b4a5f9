"""Readiness across workers: ready only when every live worker has said so."""

import subprocess

from app.workers import WorkerReadiness


def test_ready_needs_every_worker_and_a_dead_workers_mark_does_not_count(tmp_path):
    board = WorkerReadiness(tmp_path / "ready", workers=2)
    assert board.others_not_ready() == "2 of 2 workers are not ready yet"
    board.publish(True)
    assert board.others_not_ready() == "1 of 2 workers are not ready yet"
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "ready" / str(other.pid)).touch()  # as the other worker would
        assert board.others_not_ready() == ""
    finally:
        other.kill()
        other.wait()
    assert board.others_not_ready() == "1 of 2 workers are not ready yet"
    assert not (tmp_path / "ready" / str(other.pid)).exists()
    board.publish(False)
    assert board.others_not_ready() == "2 of 2 workers are not ready yet"


def test_a_single_process_is_ready_when_it_is():
    board = WorkerReadiness(None, workers=1)
    board.publish(True)
    assert board.others_not_ready() == ""
