"""Test doubles shared by several test modules."""

from __future__ import annotations


class FakeTime:
    """A clock that moves only when slept on: waits are recorded, never slept."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
