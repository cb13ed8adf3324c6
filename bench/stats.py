"""Latency samples summarised as percentiles, and the table rows benchmarks print."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """A named series of durations, in seconds."""

    name: str
    samples: tuple[float, ...]

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000

    @property
    def mean_ms(self) -> float:
        return sum(self.samples) / len(self.samples) * 1000

    def row(self) -> str:
        return (
            f"{self.name:<48} n={len(self.samples):<4} p50 {self.p50_ms:8.2f} ms"
            f"   p99 {self.p99_ms:8.2f} ms   mean {self.mean_ms:8.2f} ms"
        )


def summarize(name: str, samples: Sequence[float]) -> Summary:
    return Summary(name, tuple(samples))
