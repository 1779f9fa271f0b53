"""Roles: each includes the ones before it."""

from __future__ import annotations

import pytest

from modelswap.core.access.roles import ROLES, highest, includes, role_name
from modelswap.core.errors import InvalidInput


def test_each_role_includes_exactly_the_ones_before_it() -> None:
    for i, held in enumerate(ROLES):
        assert [r for r in ROLES if includes(held, r)] == list(ROLES[: i + 1])


def test_a_list_of_roles_amounts_to_its_highest_and_unknown_roles_are_refused() -> None:
    assert highest(["read", "deploy", "rollback"]) == "deploy"
    with pytest.raises(InvalidInput, match="unknown role 'root': one of read, predict, rollback, deploy, admin"):
        role_name("root")
    with pytest.raises(InvalidInput, match="at least one role"):
        highest([])
