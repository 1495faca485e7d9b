"""The local API used by the whole suite is a real ``prefect server start``."""

import os

from prefect_ml.compute import server


def test_suite_api_is_a_real_healthy_server(prefect_api):
    assert prefect_api == os.environ["PREFECT_API_URL"]
    assert server.healthy(prefect_api)


def test_configured_api_url_wins_over_autostart(prefect_api):
    assert server.ensure_api(autostart=False) == prefect_api
