"""Least privilege and stable role assignments."""

from __future__ import annotations

import uuid

from components.roles import BuiltInRole, assignment_name
from policy.rules.stack_wide import PRIVILEGED_ROLES


def test_role_assignments_use_built_in_role_ids_scoped_to_the_subscription(program):
    for assignment in program.of_type("azure-native:authorization:RoleAssignment"):
        role_id = assignment.inputs["roleDefinitionId"]
        assert (
            role_id.startswith("/subscriptions/") and "/providers/Microsoft.Authorization/roleDefinitions/" in role_id
        )
        assert role_id.rsplit("/", 1)[1] in {role.value for role in BuiltInRole}


def test_no_privileged_roles_and_no_group_or_subscription_scope(program):
    for assignment in program.of_type("azure-native:authorization:RoleAssignment"):
        assert assignment.inputs["roleDefinitionId"].rsplit("/", 1)[1] not in PRIVILEGED_ROLES
        scope = assignment.inputs["scope"]
        assert "/providers/" in scope, f"{assignment.name} is scoped to a subscription or resource group: {scope}"


def test_assignment_names_are_guids_derived_from_scope_principal_and_role(program):
    for assignment in program.of_type("azure-native:authorization:RoleAssignment"):
        inputs = assignment.inputs
        role = BuiltInRole(inputs["roleDefinitionId"].rsplit("/", 1)[1])
        assert inputs["roleAssignmentName"] == assignment_name(inputs["scope"], inputs["principalId"], role)
        uuid.UUID(inputs["roleAssignmentName"])


def test_assignment_name_changes_with_any_of_its_parts():
    base = assignment_name("/subscriptions/s/x", "p", BuiltInRole.ACR_PULL)
    assert base == assignment_name("/subscriptions/s/x", "p", BuiltInRole.ACR_PULL)
    assert base != assignment_name("/subscriptions/s/y", "p", BuiltInRole.ACR_PULL)
    assert base != assignment_name("/subscriptions/s/x", "q", BuiltInRole.ACR_PULL)
    assert base != assignment_name("/subscriptions/s/x", "p", BuiltInRole.KEY_VAULT_SECRETS_USER)


def test_workloads_run_as_user_assigned_identities(program):
    identities = {i.name for i in program.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    assert "identities-app" in identities
