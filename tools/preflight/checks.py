"""Subscription-wide checks: resource providers registered, permission to create role assignments.

Also `guarded`, which every check uses so that a read the deployer may not make becomes a FAIL row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tools.preflight.arm import Arm, ArmReadError
from tools.preflight.facts import Permission
from tools.preflight.report import Row, Verdict

# The pulumi_azure_native module each component imports -> the resource provider its resources belong to.
PROVIDER_OF_MODULE = {
    "apimanagement": "Microsoft.ApiManagement",
    "applicationinsights": "Microsoft.Insights",
    "cognitiveservices": "Microsoft.CognitiveServices",
    "containerinstance": "Microsoft.ContainerInstance",
    "containerregistry": "Microsoft.ContainerRegistry",
    "dbforpostgresql": "Microsoft.DBforPostgreSQL",
    "keyvault": "Microsoft.KeyVault",
    "managedidentity": "Microsoft.ManagedIdentity",
    "monitor": "Microsoft.Insights",
    "network": "Microsoft.Network",
    "operationalinsights": "Microsoft.OperationalInsights",
    "privatedns": "Microsoft.Network",
    "web": "Microsoft.Web",
}
# Microsoft.Resources (resource groups) and Microsoft.Authorization (role assignments) serve every
# subscription without registration.
MODULES_NEEDING_NO_REGISTRATION = ("resources", "authorization")
REQUIRED_PROVIDERS = tuple(sorted(set(PROVIDER_OF_MODULE.values())))

ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
ROLES_THAT_GRANT_IT = "Role Based Access Control Administrator or User Access Administrator (or Owner)"


def guarded(check: str, subject: str, make_rows: Callable[[], list[Row]]) -> list[Row]:
    """The rows of one check, or one FAIL row naming what the deployer could not read."""
    try:
        return make_rows()
    except ArmReadError as error:
        return [unreadable(check, subject, error)]


def unreadable(check: str, subject: str, error: ArmReadError) -> Row:
    if error.denied:
        return Row(
            check,
            subject,
            Verdict.FAIL,
            f"the deployer could not read {error.what} ({error.reason}: {error.message})",
            "give the deployer read access to it, e.g. the Reader role on the subscription (the preflight only reads)",
        )
    return Row(
        check,
        subject,
        Verdict.FAIL,
        f"reading {error.what} failed ({error.reason}: {error.message})",
        "run the preflight again; if it keeps failing, check https://azure.status.microsoft and the network",
    )


# ------------------------------------------------------------------------------------------------
# 1. Resource providers
# ------------------------------------------------------------------------------------------------

PROVIDERS = "resource providers"


def provider_rows(arm: Arm) -> list[Row]:
    def make_rows() -> list[Row]:
        states = arm.registration_states()
        state_of = {namespace: states.get(namespace.lower(), "NotFound") for namespace in REQUIRED_PROVIDERS}
        registered = [namespace for namespace, state in state_of.items() if state == "Registered"]
        rows = (
            [Row(PROVIDERS, "subscription", Verdict.PASS, f"registered: {', '.join(registered)}")] if registered else []
        )
        return rows + [
            _unregistered(namespace, state) for namespace, state in state_of.items() if namespace not in registered
        ]

    return guarded(PROVIDERS, "subscription", make_rows)


def _unregistered(namespace: str, state: str) -> Row:
    if state == "Registering":
        remedy = f"wait until it is Registered: az provider show --namespace {namespace} --query registrationState"
    else:
        remedy = f"az provider register --namespace {namespace}"
    detail = f"{namespace} is {state} in this subscription; the program creates resources of it"
    return Row(PROVIDERS, namespace, Verdict.FAIL, detail, remedy)


# ------------------------------------------------------------------------------------------------
# 5. Permission to create role assignments (the program grants roles to its managed identities)
# ------------------------------------------------------------------------------------------------

ROLE_ASSIGNMENTS = "role assignments"


def _matches(pattern: str, action: str) -> bool:
    """ARM action patterns: case-insensitive, `*` stands for any text (`Microsoft.Authorization/*`)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def allows(permissions: Sequence[Permission], action: str) -> bool:
    """Each entry is one role assignment: its notActions only take away from its own actions."""
    return any(
        any(_matches(pattern, action) for pattern in entry.actions)
        and not any(_matches(pattern, action) for pattern in entry.not_actions)
        for entry in permissions
    )


@dataclass(frozen=True)
class Scope:
    label: str  # "resource group rg-aichat-dev"
    resource_id: str


def _deployer_permissions(arm: Arm, resource_group: str) -> tuple[Scope, list[Permission]]:
    subscription_id = f"/subscriptions/{arm.subscription_id}"
    try:
        permissions = arm.permissions_on_resource_group(resource_group)
        return Scope(
            f"resource group {resource_group}", f"{subscription_id}/resourceGroups/{resource_group}"
        ), permissions
    except ArmReadError as error:
        if error.status != 404:
            raise
    # No such group yet (a new stack): it will inherit what the deployer holds on the subscription.
    return Scope(f"subscription {arm.subscription_id}", subscription_id), arm.permissions_on_subscription()


def role_assignment_rows(arm: Arm, resource_group: str, *, signed_in_as_deployer: bool = True) -> list[Row]:
    """`signed_in_as_deployer=False`: a preview identity (Reader) is signed in, so lacking the permission is
    only a warning; the deployment's own preflight checks the identity that runs `pulumi up`."""

    def make_rows() -> list[Row]:
        scope, permissions = _deployer_permissions(arm, resource_group)
        if allows(permissions, ROLE_ASSIGNMENT_WRITE):
            return [Row(ROLE_ASSIGNMENTS, scope.label, Verdict.PASS, f"the deployer holds {ROLE_ASSIGNMENT_WRITE}")]
        if not signed_in_as_deployer:
            detail = f"the signed-in preview identity lacks {ROLE_ASSIGNMENT_WRITE}, as a Reader should"
            return [
                Row(ROLE_ASSIGNMENTS, scope.label, Verdict.WARN, detail, "none: deployments check their own identity")
            ]
        detail = (
            f"the deployer lacks {ROLE_ASSIGNMENT_WRITE}; the program grants roles to its managed identities "
            "(components/roles.py), so `pulumi up` would fail there"
        )
        remedy = (
            f"grant the deployer {ROLES_THAT_GRANT_IT} at the subscription or resource group: az role assignment "
            f'create --assignee <deployer> --role "Role Based Access Control Administrator" --scope {scope.resource_id}'
        )
        return [Row(ROLE_ASSIGNMENTS, scope.label, Verdict.FAIL, detail, remedy)]

    return guarded(ROLE_ASSIGNMENTS, f"resource group {resource_group}", make_rows)
