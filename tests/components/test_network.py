"""Network: subnets inside the address space, not overlapping, delegated as their services need, NSG on each."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.network import API_MANAGEMENT_NSG_RULES, SUBNET_ROLES


def subnets_of(program) -> dict[str, dict]:
    vnet = program.one("azure-native:network:VirtualNetwork")
    return {subnet["name"]: subnet for subnet in vnet.inputs["subnets"]}


def test_subnets_are_inside_the_address_space_and_do_not_overlap(program):
    vnet = program.one("azure-native:network:VirtualNetwork")
    space = ipaddress.IPv4Network(vnet.inputs["addressSpace"]["addressPrefixes"][0])
    blocks = [ipaddress.IPv4Network(s["addressPrefix"]) for s in subnets_of(program).values()]
    assert len(blocks) == len(SUBNET_ROLES)
    assert all(block.subnet_of(space) for block in blocks)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(blocks, 2))


def test_subnet_cidrs_come_from_stack_config(program):
    configured = program.config["aichat:network"]["subnets"]
    actual = {role.key: subnets_of(program)[role.name]["addressPrefix"] for role in SUBNET_ROLES}
    assert actual == configured


@pytest.mark.parametrize(
    "subnet, delegation",
    [
        ("snet-app", "Microsoft.Web/serverFarms"),
        ("snet-jobs", "Microsoft.ContainerInstance/containerGroups"),
        ("snet-private-endpoints", None),
        ("snet-apim", None),
    ],
)
def test_each_subnet_has_the_delegation_its_service_needs(program, subnet, delegation):
    delegations = [d["serviceName"] for d in subnets_of(program)[subnet].get("delegations") or []]
    assert delegations == ([delegation] if delegation else [])


def test_every_subnet_has_its_own_network_security_group(program):
    nsg_ids = [s["networkSecurityGroup"]["id"] for s in subnets_of(program).values()]
    registered = {r.id for r in program.of_type("azure-native:network:NetworkSecurityGroup")}
    assert len(set(nsg_ids)) == len(SUBNET_ROLES)
    assert set(nsg_ids) == registered


def test_private_endpoint_subnet_lets_nsgs_apply_and_has_no_default_outbound(program):
    subnet = subnets_of(program)["snet-private-endpoints"]
    assert subnet["privateEndpointNetworkPolicies"] == "Enabled"
    assert subnet["defaultOutboundAccess"] is False


def test_api_management_subnet_nsg_carries_the_rules_apim_needs(program):
    nsg = next(
        r for r in program.of_type("azure-native:network:NetworkSecurityGroup") if r.name.endswith("-apiManagement")
    )
    rules = {
        (r["direction"], r["sourceAddressPrefix"], r["destinationAddressPrefix"], tuple(r["destinationPortRanges"]))
        for r in nsg.inputs["securityRules"]
    }
    assert ("Inbound", "ApiManagement", "VirtualNetwork", ("3443",)) in rules
    assert ("Inbound", "AzureLoadBalancer", "VirtualNetwork", ("6390",)) in rules
    assert len(rules) == len(API_MANAGEMENT_NSG_RULES)


def test_no_nsg_rule_opens_anything_to_the_internet(program):
    for nsg in program.of_type("azure-native:network:NetworkSecurityGroup"):
        for rule in nsg.inputs.get("securityRules") or []:
            if rule["direction"] == "Inbound":
                assert rule["sourceAddressPrefix"] not in ("*", "Internet", "0.0.0.0/0"), (nsg.name, rule["name"])


def test_resource_group_name_follows_the_stack(program):
    group = program.one("azure-native:resources:ResourceGroup")
    assert group.inputs["resourceGroupName"] == f"rg-aichat-{program.stack}"
    assert program.outputs["resourceGroupName"] == group.inputs["resourceGroupName"]


def test_network_component_alone_exposes_a_subnet_id_per_role(declare):
    from components.network import Network, NetworkArgs

    exposed = {}

    def build(context, config):
        network = Network("net", NetworkArgs(context, config.network, "rg", workspace_id="workspace"))
        for key, subnet_id in network.subnet_ids.items():
            subnet_id.apply(lambda value, key=key: exposed.__setitem__(key, value))

    run = declare(build)
    vnet = run.one("azure-native:network:VirtualNetwork")
    assert exposed == {role.key: f"{vnet.id}/subnets/{role.name}" for role in SUBNET_ROLES}
    azure_resources = [r for r in run.resources if r.type.startswith("azure-native:")]
    assert all(r.parent == run.one("aichat:network:Network").urn for r in azure_resources)
