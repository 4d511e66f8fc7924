"""Run the policy pack over the offline program: the one place the pack meets the mocks.

`pulumi preview --policy-pack policy` hands each policy the resources the program registers. This module
builds the same arguments (`ResourceValidationArgs`, `StackValidationArgs`) from the registrations that
`tools.offline.run_program` records under mocks, runs every rule, and collects the violations. The tests
and `python -m tools.plan` use it, so a pull request from a fork (no cloud credentials) still gets checked.

Like the engine, resource rules see a resource's inputs and stack rules see its outputs (under mocks the
outputs are the inputs plus the values a provider would compute).

It lives in tools/, not in the pack: the pack (policy/) imports nothing of this repository, so the CLI can
run it with only policy/requirements.txt installed, and the tools depend on the pack, never the reverse
(tests/policy/test_dependency_direction.py keeps it so).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import POLICIES
from tools.offline import Registration


@dataclass(frozen=True)
class Violation:
    """One finding: which rule, how serious, which resource, and what is wrong (with the fix)."""

    rule: str
    level: EnforcementLevel
    message: str
    resource_type: str = ""
    resource_name: str = ""
    urn: str = ""

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY

    @property
    def resource(self) -> str:
        return f"{self.resource_type} {self.resource_name}" if self.resource_name else "the stack"

    def __str__(self) -> str:
        return f"[{self.level.value}] {self.rule}: {self.resource}: {self.message}"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_SECONDS_PER_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}


def duration_seconds(text: str) -> float:
    """Pulumi timeouts are Go durations such as `120m` or `1h30m`; policies see seconds."""
    parts = _DURATION_PART.findall(text or "")
    if text and "".join(n + u for n, u in parts) != text:
        raise ValueError(f"custom timeout {text!r} is not a duration such as 120m or 1h30m")
    return sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in parts)


def resource_options(registration: Registration) -> PolicyResourceOptions:
    timeouts = registration.custom_timeouts
    return PolicyResourceOptions(
        protect=registration.protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(
            *(duration_seconds(timeouts.get(k, "")) for k in ("create", "update", "delete"))
        ),
        additional_secret_outputs=[],
        parent=registration.parent or None,
    )


def resource_args(registration: Registration) -> ResourceValidationArgs:
    """What the engine passes a resource rule during preview: the resource's inputs and options."""
    return ResourceValidationArgs(
        resource_type=registration.type,
        props=registration.inputs,
        urn=registration.urn,
        name=registration.name,
        opts=resource_options(registration),
        provider=None,
    )


def stack_args(registrations: Sequence[Registration]) -> StackValidationArgs:
    """What the engine passes a stack rule: every resource's state, linked to its parent and dependencies."""
    resources = {
        r.urn: PolicyResource(r.type, r.outputs or r.inputs, r.urn, r.name, resource_options(r), None, None, [], {})
        for r in registrations
    }
    for registration in registrations:
        resource = resources[registration.urn]
        resource.parent = resources.get(registration.parent)
        resource.dependencies = [resources[urn] for urn in registration.depends_on if urn in resources]
    return StackValidationArgs(list(resources.values()))


def _check_resource(policy: ResourceValidationPolicy, registration: Registration) -> list[Violation]:
    found: list[Violation] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(
            Violation(
                policy.name, policy.enforcement_level, message, registration.type, registration.name, registration.urn
            )
        )

    policy.validate(resource_args(registration), report)
    return found


def _check_stack(policy: StackValidationPolicy, registrations: Sequence[Registration]) -> list[Violation]:
    by_urn = {r.urn: r for r in registrations}
    found: list[Violation] = []

    def report(message: str, urn: str | None = None) -> None:
        resource = by_urn.get(urn or "")
        kind, name = (resource.type, resource.name) if resource else ("", "")
        found.append(Violation(policy.name, policy.enforcement_level, message, kind, name, urn or ""))

    policy.validate(stack_args(registrations), report)
    return found


def evaluate(registrations: Sequence[Registration], policies: Sequence[Policy] = POLICIES) -> list[Violation]:
    """Every violation of `policies` by the registered resources, resource rules first, in rule order."""
    violations: list[Violation] = []
    for policy in policies:
        if isinstance(policy, ResourceValidationPolicy):
            for registration in registrations:
                violations += _check_resource(policy, registration)
        elif isinstance(policy, StackValidationPolicy):
            violations += _check_stack(policy, registrations)
        else:
            raise TypeError(f"policy {policy.name} is neither a resource nor a stack validation policy")
    return violations
