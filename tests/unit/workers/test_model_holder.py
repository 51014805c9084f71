"""The model holder swaps the champion between batches when the alias moves, on its poll
interval or at once when asked, and keeps deciding with the old model when the new one fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.model_holder import ModelHolder


@dataclass
class Registry:
    alias: int = 1
    broken: set[int] = field(default_factory=set)
    loads: list[int] = field(default_factory=list)

    def alias_version(self, name: str, alias: str) -> int:
        return self.alias

    def load(self, name: str, alias: str, device: str | None = None) -> Any:
        if self.alias in self.broken:
            raise RuntimeError(f"v{self.alias} fails its integrity check")
        self.loads.append(self.alias)
        return type("Loaded", (), {"version": self.alias})()


@dataclass
class Engine:
    swapped_to: list[int] = field(default_factory=list)

    def swap_champion(self, model: Any) -> None:
        self.swapped_to.append(model.version)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(registry: Registry, clock: Clock) -> ModelHolder:
    holder = ModelHolder(registry, "credit_data", poll_s=5.0, clock=clock)
    holder.load()
    return holder


def test_an_alias_move_is_picked_up_on_the_next_poll() -> None:
    registry, clock, engine = Registry(), Clock(), Engine()
    holder = make(registry, clock)
    clock.now = 10.0
    holder.before_batch(engine)  # polls: nothing moved
    registry.alias = 2
    clock.now = 12.0
    holder.before_batch(engine)  # within the poll interval: no registry read
    assert engine.swapped_to == [] and holder.version == 1
    clock.now = 15.5
    holder.before_batch(engine)
    assert engine.swapped_to == [2] and holder.version == 2


def test_a_reload_request_checks_at_once() -> None:
    registry, clock, engine = Registry(), Clock(), Engine()
    holder = make(registry, clock)
    clock.now = 10.0
    holder.before_batch(engine)
    registry.alias = 2
    holder.request_reload()
    holder.before_batch(engine)  # same instant, but asked for
    assert engine.swapped_to == [2]


def test_a_new_version_that_fails_to_load_keeps_the_old_one() -> None:
    registry, clock, engine = Registry(broken={2}), Clock(), Engine()
    holder = make(registry, clock)
    registry.alias = 2
    holder.request_reload()
    holder.before_batch(engine)
    assert engine.swapped_to == [] and holder.version == 1
