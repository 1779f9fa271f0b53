"""The roles a token can hold, each including the ones before it."""

from __future__ import annotations

from modelswap.core.errors import InvalidInput

READ = "read"  # the GET routes and the console
PREDICT = "predict"  # the inference routes and feedback, when MODELSWAP_PROTECT_PREDICT=1
ROLLBACK = "rollback"  # rollback, reload; stop, pause or abort a canary, shadow or rollout; watch reset
DEPLOY = "deploy"  # deploy, canary/rollout/shadow start and promote, aliases, retrain, skops uploads
ADMIN = "admin"  # delete, gc, monitor thresholds, pickle uploads (where the server takes them)

ROLES: tuple[str, ...] = (READ, PREDICT, ROLLBACK, DEPLOY, ADMIN)
RANK = {role: rank for rank, role in enumerate(ROLES)}


def role_name(value: object) -> str:
    """``value`` as a role, or InvalidInput listing the roles."""
    if not isinstance(value, str) or value not in RANK:
        raise InvalidInput(f"unknown role {value!r}: one of {', '.join(ROLES)}")
    return value


def includes(held: str, needed: str) -> bool:
    """Whether a token holding ``held`` may do what needs ``needed``."""
    return RANK[held] >= RANK[needed]


def highest(roles: list[str] | tuple[str, ...]) -> str:
    """The role a list of roles amounts to: the highest, as each includes those before it."""
    if not roles:
        raise InvalidInput(f"a token needs at least one role: one of {', '.join(ROLES)}")
    return max((role_name(r) for r in roles), key=RANK.__getitem__)
