"""Network: subnets inside the address space, not overlapping, delegated as their services need, NSG on each."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.network import (
    API_MANAGEMENT_NSG_RULES,
    API_MANAGEMENT_SERVICE_ENDPOINTS,
    APPLICATION_GATEWAY,
    EGRESS_ROLES,
    FIREWALL,
    SUBNET_ROLES,
)


def subnets_of(program) -> dict[str, dict]:
    vnet = program.one("azure-native:network:VirtualNetwork")
    return {subnet["name"]: subnet for subnet in vnet.inputs["subnets"]}


def configured_roles(program):
    """The subnet roles the stack file gives a block (the optional ones only with their ingress/egress mode)."""
    configured = program.config["aichat:network"]["subnets"]
    return [role for role in SUBNET_ROLES if role.key in configured]


def test_subnets_are_inside_the_address_space_and_do_not_overlap(program):
    vnet = program.one("azure-native:network:VirtualNetwork")
    space = ipaddress.IPv4Network(vnet.inputs["addressSpace"]["addressPrefixes"][0])
    blocks = [ipaddress.IPv4Network(s["addressPrefix"]) for s in subnets_of(program).values()]
    assert len(blocks) == len(configured_roles(program))
    assert all(block.subnet_of(space) for block in blocks)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(blocks, 2))


def test_subnet_cidrs_come_from_stack_config(program):
    configured = program.config["aichat:network"]["subnets"]
    actual = {role.key: subnets_of(program)[role.name]["addressPrefix"] for role in configured_roles(program)}
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


def test_every_subnet_has_its_own_network_security_group_but_the_firewalls(program):
    subnets = subnets_of(program)
    nsg_ids = [s["networkSecurityGroup"]["id"] for name, s in subnets.items() if name != FIREWALL.name]
    registered = {r.id for r in program.of_type("azure-native:network:NetworkSecurityGroup")}
    assert len(set(nsg_ids)) == len([role for role in configured_roles(program) if role.has_nsg])
    assert set(nsg_ids) == registered
    if FIREWALL.name in subnets:  # Azure refuses an NSG on AzureFirewallSubnet
        assert "networkSecurityGroup" not in subnets[FIREWALL.name]


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


def test_no_nsg_rule_opens_anything_to_the_internet_but_the_gateways_https(program):
    for nsg in program.of_type("azure-native:network:NetworkSecurityGroup"):
        for rule in nsg.inputs.get("securityRules") or []:
            if rule["direction"] != "Inbound" or rule["sourceAddressPrefix"] not in ("*", "Internet", "0.0.0.0/0"):
                continue
            # The ingress gateway's subnet takes users on 443 (and 80, which only redirects to 443).
            assert nsg.name.endswith(f"-{APPLICATION_GATEWAY.key}"), (nsg.name, rule["name"])
            assert rule["destinationPortRanges"] in (["443"], ["80"]), (nsg.name, rule["name"])


def test_the_gateway_subnet_lets_azure_manage_and_probe_the_gateway(prod):
    nsg = prod.one("azure-native:network:NetworkSecurityGroup", f"network-nsg-{APPLICATION_GATEWAY.key}")
    rules = {
        (r["sourceAddressPrefix"], r.get("destinationPortRange") or tuple(r["destinationPortRanges"]))
        for r in nsg.inputs["securityRules"]
    }
    # configuration-infrastructure.md, "Required security rules" (v2).
    assert ("GatewayManager", ("65200-65535",)) in rules
    assert ("AzureLoadBalancer", "*") in rules


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_with_egress_through_the_firewall_every_subnet_is_private_and_each_egressing_one_has_a_route_table(
    program_runs, stack
):
    program = program_runs[stack]
    through_firewall = program.stack_config.egress.through_firewall
    subnets = subnets_of(program)
    tables = {r.id: r for r in program.of_type("azure-native:network:RouteTable")}
    if not through_firewall:
        assert tables == {}
        assert all("routeTable" not in subnet for subnet in subnets.values())
        return
    assert all(subnet["defaultOutboundAccess"] is False for subnet in subnets.values())
    for role in SUBNET_ROLES:
        table_id = (subnets[role.name].get("routeTable") or {}).get("id")
        assert (table_id in tables) == (role in EGRESS_ROLES), role.key
    # Learnt routes (VPN, ExpressRoute) must not override the way to the firewall; the routes themselves are
    # separate resources added by the egress component (test_egress.py), so the tables list none.
    assert all(t.inputs["disableBgpRoutePropagation"] is True and not t.inputs.get("routes") for t in tables.values())


def test_api_management_keeps_its_service_dependencies_on_the_backbone_when_force_tunnelled(dev, prod):
    services = {s["service"] for s in subnets_of(prod)["snet-apim"]["serviceEndpoints"]}
    assert services == set(API_MANAGEMENT_SERVICE_ENDPOINTS)
    assert "serviceEndpoints" not in subnets_of(dev)["snet-apim"]


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

    run = declare(build, stack="prod")  # prod's file gives every role a block
    vnet = run.one("azure-native:network:VirtualNetwork")
    assert exposed == {role.key: f"{vnet.id}/subnets/{role.name}" for role in SUBNET_ROLES}
    azure_resources = [r for r in run.resources if r.type.startswith("azure-native:")]
    assert all(r.parent == run.one("aichat:network:Network").urn for r in azure_resources)
