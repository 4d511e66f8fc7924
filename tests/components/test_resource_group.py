"""The resource group comes first, in its own component; what moved for that keeps its place in older stacks."""

from __future__ import annotations

import pytest

import tools.offline as offline
from components.network import ROLES_BEFORE_INGRESS_AND_EGRESS

GROUP = "azure-native:resources:ResourceGroup"
SETTING = "azure-native:monitor:DiagnosticSetting"


def test_the_resource_group_is_the_first_azure_resource_declared(program):
    azure_resources = [r for r in program.resources if r.type.startswith("azure-native:")]
    assert azure_resources[0].type == GROUP
    assert azure_resources[0].parent == program.one("aichat:core:ResourceGroup").urn


# What the network declares that has diagnostic settings (route tables have none to send).
DIAGNOSED = ("azure-native:network:VirtualNetwork", "azure-native:network:NetworkSecurityGroup")


def test_the_network_sends_its_own_diagnostics(program):
    network = program.one("aichat:network:Network")
    network_ids = {r.id for r in program.resources if r.parent == network.urn and r.type in DIAGNOSED}
    settings = [s for s in program.of_type(SETTING) if s.inputs["resourceUri"] in network_ids]
    # The VNet and an NSG per subnet but AzureFirewallSubnet (Azure refuses one there).
    subnets = program.one("azure-native:network:VirtualNetwork").inputs["subnets"]
    with_nsg = [subnet for subnet in subnets if subnet["name"] != "AzureFirewallSubnet"]
    assert len(settings) == len(network_ids) == 1 + len(with_nsg)
    assert {s.parent for s in settings} == {network.urn}


def old_urns(stack: str) -> set[str]:
    """Where these resources were before the resource group came first (the network created it, and the
    workspace, created after the network, sent the network's diagnostics)."""
    prefix = f"urn:pulumi:{stack}::aichat::"
    names = ["network-vnet", *(f"network-nsg-{role.key}" for role in ROLES_BEFORE_INGRESS_AND_EGRESS)]
    return {
        f"{prefix}aichat:network:Network${GROUP}::network-rg",
        *(f"{prefix}aichat:observability:Observability${SETTING}::{name}-diagnostics" for name in names),
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_older_stacks_keep_the_moved_resources_through_aliases(monkeypatch, stack):
    # The URN each alias stands for, as the engine derives it: the old parent's type, this type, the old name.
    alias_urns: set[str] = set()
    register = offline.RecordingMonitor.RegisterResource

    def recording(self, request):
        response = register(self, request)
        for alias in request.aliases:
            if alias.spec.parentUrn:
                parent_type = alias.spec.parentUrn.split("::")[2]
                name = alias.spec.name or request.name
                alias_urns.add(f"urn:pulumi:{stack}::aichat::{parent_type}${request.type}::{name}")
        return response

    monkeypatch.setattr(offline.RecordingMonitor, "RegisterResource", recording)
    run = offline.run_program(stack)
    assert alias_urns == old_urns(stack)
    assert not old_urns(stack) & {r.urn for r in run.resources}  # they did move
