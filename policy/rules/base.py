"""The small toolkit every rule is written with.

A rule is a `pulumi_policy` policy. This module keeps the shared shapes in one place: reading nested
wire properties (camelCase, as the azure-native provider receives them), knowing which environment a
resource belongs to, and turning a "list of problems" function into a policy whose violation messages
always carry the remediation hint.

Only the standard library and pulumi_policy are imported, so the pack runs with nothing but
`policy/requirements.txt` installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

# Stacks held to production rules (protection, pinned model versions, production SKU lists).
PRODUCTION_ENVIRONMENTS = ("prod",)

# A resource check: (props, args) -> the problems found, each a sentence naming the setting and its value.
ResourceCheck = Callable[[Mapping[str, Any], ResourceValidationArgs], Iterable[str]]
# A stack check: resources -> (problem, urn of the offending resource) pairs.
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[str, str]]]


def prop(props: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """`prop(props, "properties.networkAcls.defaultAction")`: a nested value, or `default` when absent."""
    value: Any = props
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return default if value is None else value


def items(value: Any) -> list[Any]:
    """A wire list as a Python list (the engine hands lists over as read-only sequences)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return []


def same_text(a: Any, b: Any) -> bool:
    """Azure compares enum values and resource ids without regard to case."""
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    parts = urn.split(":")
    return parts[2] if len(parts) > 2 and urn.startswith("urn:pulumi:") else ""


def environment_of(props: Mapping[str, Any], urn: str) -> str:
    """The `environment` tag the program puts on every resource; the stack name when a resource has no tags."""
    return str(prop(props, "tags.environment") or stack_of(urn))


def short_type(resource_type: str) -> str:
    """`azure-native:keyvault:Vault` -> `keyvault:Vault` (how the docs and messages name types)."""
    return resource_type.removeprefix("azure-native:")


def finding(problem: str, remediation: str) -> str:
    """Every violation message says what is wrong and how to fix it, in that order."""
    return f"{problem}. Fix: {remediation}"


def resource_rule(
    name: str,
    *,
    types: Sequence[str] | None,
    description: str,
    remediation: str,
    check: ResourceCheck,
    level: EnforcementLevel = MANDATORY,
) -> ResourceValidationPolicy:
    """A per-resource rule for the azure-native `types` listed (short form, e.g. `keyvault:Vault`); None = all."""
    full_types = None if types is None else {f"azure-native:{t}" for t in types}

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        applies = (
            args.resource_type.startswith("azure-native:") if full_types is None else args.resource_type in full_types
        )
        if not applies:
            return
        for problem in check(args.props, args):
            report_violation(finding(problem, remediation), None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        remediation_steps=remediation,
    )


def stack_rule(
    name: str, *, description: str, remediation: str, check: StackCheck, level: EnforcementLevel = MANDATORY
) -> StackValidationPolicy:
    """A rule that needs the whole stack (relations between resources); each problem names its resource."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for problem, urn in check(args.resources):
            report_violation(finding(problem, remediation), urn)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        remediation_steps=remediation,
    )


def of_type(resources: Sequence[PolicyResource], *types: str) -> list[PolicyResource]:
    wanted = {f"azure-native:{t}" for t in types}
    return [r for r in resources if r.resource_type in wanted]


def azure_name(resource: PolicyResource, name_input: str | None = None) -> str | None:
    """The resource's name in Azure: its `<type>Name` input, or the `name` the provider reports."""
    return (prop(resource.props, name_input) if name_input else None) or prop(resource.props, "name")


def resource_id(resource: PolicyResource) -> str | None:
    value = prop(resource.props, "id")
    return value if isinstance(value, str) and value else None


def is_child_id(child_id: Any, parent_id: str | None) -> bool:
    """Azure nests child resource ids under the parent's id (`<parent id>/<child type>/<name>`)."""
    return bool(parent_id) and isinstance(child_id, str) and child_id.lower().startswith(parent_id.lower() + "/")


def expect(props: Mapping[str, Any], path: str, wanted: Any, *, absent_ok: bool = False) -> list[str]:
    """One problem when the setting at `path` is not `wanted` (text compared without case).

    `absent_ok` is for settings whose Azure default already is the wanted value.
    """
    value = prop(props, path)
    if value is None:
        return [] if absent_ok else [f"{path} is not set; it must be set to {wanted!r} explicitly"]
    if value == wanted or same_text(value, wanted):
        return []
    return [f"{path} is {value!r}; it must be {wanted!r}"]
