"""A starter policy for a new flow: score bands, a fallback and one reason code per feature.

``decisionflow flow init`` writes it next to the inferred feature spec. It is a starting point
to edit (hard rules, segments, reason texts), valid as written::

    policy = starter_policy("card", ["income", "age"], "no")
    assert load_policy(path, known_features=["income", "age"]) == policy  # once saved

Plain names in, no feature-spec object: the decision core stays free of the model layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from decisioning.policy import Policy, PolicyError, dump_policy, parse_policy

__all__ = ["starter_policy", "starter_policy_yaml"]

_BANDS = (("approve", 0.0, 0.2), ("review", 0.2, 0.5), ("decline", 0.5, 1.0))


def _label_text(positive: str | int | bool) -> str:
    if isinstance(positive, bool):
        return "true" if positive else "false"
    return str(positive)


def starter_policy(
    name: str, features: Sequence[str], positive: str | int | bool, *, version: str = "1"
) -> Policy:
    """A valid policy for ``features`` whose score is the probability of ``positive``.

    Bands approve ``[0, 0.2)``, review ``[0.2, 0.5)``, decline ``[0.5, 1]``; no score means
    review; reason codes ``R01``, ``R02``... follow the features' order; reasons by
    ``gradient_x_input`` for review and decline only. Raises
    :class:`~decisioning.policy.PolicyError` for an invalid name or duplicate features.
    """
    if len(set(features)) != len(features):
        dupes = sorted({f for f in features if list(features).count(f) > 1})
        raise PolicyError(f"starter policy {name!r}: duplicate feature names {dupes}")
    label = _label_text(positive)
    data = {
        "name": name,
        "version": version,
        "description": (
            f"Starter policy for {name}: approve low scores, review the middle, decline high "
            f"ones. The score is the probability of the positive class {label!r}."
        ),
        "score": {"positive_class": label},
        "decisions": [band[0] for band in _BANDS],
        "bands": [{"decision": d, "from": lo, "to": hi} for d, lo, hi in _BANDS],
        "fallback": {
            "decision": "review",
            "reason": {
                "code": "MODEL_UNAVAILABLE",
                "text": "Risk model unavailable; sent to manual review",
            },
        },
        "reason_codes": {
            feature: {"code": f"R{i:02d}", "text": f"Driven by {feature}"}
            for i, feature in enumerate(features, start=1)
        },
        "top_reasons": 3,
        "reasons": "gradient_x_input",
        "explain_only": ["review", "decline"],
    }
    return parse_policy(data, source=f"starter policy {name!r}", known_features=features)


def starter_policy_yaml(policy: Policy) -> str:
    """``policy`` as YAML with a header saying what to review before going live."""
    header = (
        f"# Starter policy {policy.name}: written by `decisionflow flow init`; edit before going\n"
        "# live: band limits, hard rules (see docs/policies.md), reason texts.\n"
        f"# Score = probability of the positive class {policy.score.positive_class!r} "
        "(HIGH = risky: declined).\n"
    )
    return header + dump_policy(policy)
