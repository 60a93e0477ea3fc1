"""How many of some time spans (deploy scripts, lock holds) overlapped."""

from __future__ import annotations


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans `(start, end)` running at one instant; an end sorts
    before a start at the same instant (touching is no overlap)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most
