"""Deterministic champion/challenger assignment by hashing the entity id.

``blake2b(entity_id, key=blake2b(salt))`` gives every entity two independent uniform draws in
[0, 1): the first picks the arm (challenger when below ``challenger_share``), the second picks
whether the arm that does not decide is also scored in shadow (when below ``shadow_share``).
The same entity always gets the same arm for a given salt, in every process and on every run;
change the salt to reshuffle.

Shadow decisions are recorded (topic ``decisions.shadow``), never acted on. A pure shadow
rollout is ``challenger_share: 0, shadow_share: 1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from decisioning.contracts import Arm

__all__ = ["ArmAssignment", "ArmConfig", "assign_arms", "entity_uniforms"]

_TWO_POW_53 = float(2**53)


class ArmConfig(BaseModel):
    """Traffic split between the champion and the challenger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: Annotated[str, Field(min_length=1)] = "decisionflow-arms-v1"
    challenger_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    shadow_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Share of entities on which the arm that does not decide is also scored, in shadow."""


@dataclass(frozen=True)
class ArmAssignment:
    """Arms for a batch: ``challenger[i]`` decides for row i; ``shadow[i]`` adds a shadow run."""

    challenger: NDArray[np.bool_]
    shadow: NDArray[np.bool_]

    def arm(self, i: int) -> Arm:
        """The deciding arm of row ``i``."""
        return "challenger" if bool(self.challenger[i]) else "champion"

    def arms(self) -> list[Arm]:
        """The deciding arm of every row."""
        return ["challenger" if c else "champion" for c in self.challenger.tolist()]

    def shadow_arm(self, i: int) -> Arm | None:
        """The arm scored in shadow for row ``i`` (the one that does not decide), or None."""
        if not bool(self.shadow[i]):
            return None
        return "champion" if bool(self.challenger[i]) else "challenger"


def entity_uniforms(entity_ids: Iterable[str], salt: str) -> NDArray[np.float64]:
    """Two independent uniforms in [0, 1) per entity, shape ``(n, 2)``, from blake2b."""
    key = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
    digests = b"".join(
        hashlib.blake2b(eid.encode("utf-8"), digest_size=16, key=key).digest() for eid in entity_ids
    )
    words = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    return (words >> np.uint64(11)).astype(np.float64) / _TWO_POW_53


def assign_arms(entity_ids: Iterable[str], config: ArmConfig) -> ArmAssignment:
    """Assign every entity of a batch to an arm, and pick its shadow runs."""
    u = entity_uniforms(entity_ids, config.salt)
    return ArmAssignment(
        challenger=u[:, 0] < config.challenger_share,
        shadow=u[:, 1] < config.shadow_share,
    )
