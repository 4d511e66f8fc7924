"""Every rule of the aichat policy pack, in the order the docs table lists them.

Import `POLICIES` (the pack's __main__.py and the tests do); never construct the PolicyPack here,
because `PolicyPack(...)` starts a server and never returns.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from . import hygiene, services, stack_wide

POLICIES: list[Policy] = [*services.RULES, *stack_wide.RULES, *hygiene.RULES]


def is_mandatory(policy: Policy) -> bool:
    return policy.enforcement_level == EnforcementLevel.MANDATORY


def policy_named(name: str) -> Policy:
    matches = [p for p in POLICIES if p.name == name]
    if not matches:
        raise KeyError(f"no rule named {name!r}; rules: {', '.join(p.name for p in POLICIES)}")
    return matches[0]
