"""The HTTP API in-process (FastAPI over the runtime, agents in-process): no Ray."""

import pytest
from fastapi.testclient import TestClient

from flywheel.cli.local_server import local_api
from flywheel.services.limit_settings import LimitSettings
from flywheel.services.settings import load_settings
from flywheel.ledger import Ledger
from tests import api_scenarios as scenarios


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("api") / "ledger.db"
    settings = load_settings("configs/app.yaml")
    settings = settings.model_copy(update={"database_url": f"sqlite:///{db}",
                                           "simulator": settings.simulator.model_copy(update={"latency_scale": 0.0}),
                                           # waiting_run starts runs as fast as it can
                                           "limits": LimitSettings(per_token="100000 per second")})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    _, token = ledger.create_token("service", name="api-tests", created_by="tests")
    ledger.dispose()
    with TestClient(local_api(settings), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_run_then_outcome_shows_on_run(client):
    scenarios.run_then_outcome_shows_on_run(client)


def test_checkpoint_resumed_twice_acts_once(client):
    scenarios.checkpoint_resumed_twice_acts_once(client)


def test_duplicates_and_rejections_counted(client):
    scenarios.duplicates_and_rejections_counted(client)


def test_bad_requests_are_clear(client):
    scenarios.bad_requests_are_clear(client)


def test_listing_health_and_stats(client):
    scenarios.listing_health_and_stats(client)


def test_requests_without_a_valid_token_are_refused(client):
    scenarios.requests_without_a_valid_token_are_refused(client)
