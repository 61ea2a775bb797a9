"""`GET /metrics`: requests, batch sizes and images counted."""

from __future__ import annotations

from helpers import COLORS, color_png, multipart


def test_metrics_count_requests_and_batches(client):
    client.post("/predict", data=multipart(color_png(COLORS["red"]), color_png(COLORS["blue"])))
    client.post("/predict", data=multipart(b"junk"))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model_server_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    assert 'model_server_errors_total{endpoint="/predict",status="400"}' in text
    assert "model_server_batch_size_bucket" in text
    assert "model_server_request_latency_seconds_bucket" in text
