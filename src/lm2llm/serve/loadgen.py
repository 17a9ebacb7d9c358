"""A load generator: C concurrent clients send N requests over real HTTP and time each one.

Used by the load test, the deployment chapter of the tour and `benchmarks/bench_serve.py`, so all three
measure the same way. Each client is a thread with one keep-alive connection (the standard library's
`http.client`, so the clients cost little next to the server); a request's latency runs from sending it
to reading the whole answer, and throughput counts the completion tokens the server reports in `usage`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # of the requests answered with 200
    completion_tokens: int = 0
    statuses: Counter = field(default_factory=Counter)
    peers: set[str] = field(default_factory=set)  # the addresses the clients' connections reached

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def latency(self, quantile: float) -> float:
        return float(np.quantile(self.latencies, quantile)) if self.latencies else float("nan")

    def summary(self) -> dict:
        return {"clients": self.clients, "requests": self.requests, "seconds": round(self.seconds, 3),
                "completion_tokens": self.completion_tokens, "tokens_per_second": round(self.tokens_per_second, 2),
                "p50_latency_s": round(self.latency(0.5), 4), "p99_latency_s": round(self.latency(0.99), 4),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}


def latency_ratio_interval(base: LoadResult, loaded: LoadResult, quantile: float = 0.5, resamples: int = 2000,
                           seed: int = 0) -> tuple[float, float]:
    """A 95 % bootstrap interval of `loaded`'s latency quantile over `base`'s (each load's requests resampled on
    their own): whether latency grew beyond the run-to-run noise of a few timed requests."""
    rng = np.random.default_rng(seed)
    ratios = [np.quantile(rng.choice(loaded.latencies, len(loaded.latencies)), quantile)
              / np.quantile(rng.choice(base.latencies, len(base.latencies)), quantile) for _ in range(resamples)]
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def run_load(url: str, body: Callable[[int], dict], *, clients: int, requests: int,
             path: str = "/v1/completions", api_key: str | None = None, time_limit: float | None = None,
             timeout: float = 60.0) -> LoadResult:
    """Send `requests` POSTs of `body(i)` from `clients` threads; stop handing out requests after
    `time_limit` seconds. Connection failures count under status 0."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    result = LoadResult(clients, 0.0)
    lock = threading.Lock()
    counter = iter(range(requests))
    start = time.perf_counter()

    def next_index() -> int | None:
        with lock:
            if time_limit is not None and time.perf_counter() - start > time_limit:
                return None
            return next(counter, None)

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            while (index := next_index()) is not None:
                payload = json.dumps(body(index)).encode()
                sent = time.perf_counter()
                try:
                    connection.request("POST", path, payload, headers)
                    response = connection.getresponse()
                    data = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    connection.close()
                    status, data = 0, b""
                took = time.perf_counter() - sent
                tokens = json.loads(data)["usage"]["completion_tokens"] if status == 200 else 0
                peer = connection.sock.getpeername()[0] if connection.sock is not None else None
                with lock:
                    result.statuses[status] += 1
                    if status == 200:
                        result.latencies.append(took)
                        result.completion_tokens += tokens
                    if peer:
                        result.peers.add(peer)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - start
    return result
