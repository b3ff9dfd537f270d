"""The Tool protocol: one batch call per tool per rollout step (METHOD.md §1: tools never throttle)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Tool(Protocol):
    name: str  # registry name, e.g. "calculator"
    tag: str  # the action tag it serves, e.g. "math_exp"

    def batch(self, queries: list[str]) -> list[str]:
        """One result string per query, in order. Never raises for a bad query: returns an error string."""
        ...
