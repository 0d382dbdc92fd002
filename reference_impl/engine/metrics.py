"""Prometheus metrics under sglang's names, in a registry of the server's own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# sglang's buckets start at 0.1 s; the CPU engine needs millisecond resolution below them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8,
                   1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)


class ServerMetrics:
    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model_name"]
        r = self.registry

        def hist(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=r)

        self.ttft = hist("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.")
        self.itl = hist("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.")
        self.e2e = hist("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds")
        self.prompt_tokens = Counter("sglang:prompt_tokens", "Number of prefill tokens processed.", labels,
                                     registry=r)
        self.generation_tokens = Counter("sglang:generation_tokens", "Number of generation tokens processed.",
                                         labels, registry=r)
        self.requests = Counter("sglang:num_requests", "The number of processed requests.", labels, registry=r)
        self.running = Gauge("sglang:num_running_reqs", "The number of running requests.", labels, registry=r)
        self.label = model_name
        self.running.labels(model_name).set(0)

    def first_token(self, seconds: float, prompt_tokens: int) -> None:
        self.ttft.labels(self.label).observe(seconds)
        self.prompt_tokens.labels(self.label).inc(prompt_tokens)
        self.generation_tokens.labels(self.label).inc()

    def next_token(self, seconds: float) -> None:
        self.itl.labels(self.label).observe(seconds)
        self.generation_tokens.labels(self.label).inc()

    def finished(self, seconds: float) -> None:
        self.e2e.labels(self.label).observe(seconds)
        self.requests.labels(self.label).inc()

    def set_running(self, n: int) -> None:
        self.running.labels(self.label).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
