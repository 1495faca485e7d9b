from helpers import pid_alive


def test_worker_fixture_starts_and_stops(start_worker):
    worker = start_worker("fixture-pool")
    assert pid_alive(worker.pid)
    worker.stop()
    assert not pid_alive(worker.pid)
