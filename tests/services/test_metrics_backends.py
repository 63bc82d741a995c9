"""Both metrics backends take every declared metric with its labels; the facade's updates come
out of prometheus-client's registry under the declared names."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from flywheel.ledger.records import OutcomeReport
from flywheel.services.metrics import SPECS, Metrics, PrometheusBackend, RayBackend


def _labels(spec):
    return {k: "x" for k in spec.labels}


def _use_every_metric(backend) -> None:
    for spec in SPECS:
        update = {"counter": backend.inc, "gauge": backend.set, "histogram": backend.observe}[spec.kind]
        update(spec.name, 0.5, _labels(spec))


def test_every_metric_goes_to_prometheus_client():
    backend = PrometheusBackend()
    _use_every_metric(backend)
    body, content_type = backend.exposition()
    names = {f.name for f in text_string_to_metric_families(body.decode()) if not f.name.endswith("_created")}
    assert content_type.startswith("text/plain")
    assert names == {s.name for s in SPECS}
    assert backend.registry is not PrometheusBackend().registry  # no global registry


def test_every_metric_goes_to_ray_metrics():
    backend = RayBackend()  # outside a Ray worker the updates are recorded nowhere, and never fail
    _use_every_metric(backend)
    metrics = Metrics(backend)
    metrics.outcomes(OutcomeReport(), [])  # an empty batch: zero increments, which Ray's Counter refuses
    assert set(backend._metrics) == {s.name for s in SPECS}
    assert metrics.backend is backend
