"""Reading a Prometheus scrape in tests: every sample as ``(name, labels) -> value``."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape in the text format, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never incremented is not shown)."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)
