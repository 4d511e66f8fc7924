"""Egress: prod's workloads reach the internet only through Azure Firewall, and only where their rules allow."""

from __future__ import annotations

import ipaddress

import pytest

from components.egress import (
    API_MANAGEMENT_CONTROL_PLANE_ROUTE,
    EGRESS_RULES,
    ApplicationRule,
    NetworkRule,
)
from components.network import API_MANAGEMENT, EGRESS_ROLES, FIREWALL

FIREWALL_TYPE = "azure-native:network:AzureFirewall"
ROUTE = "azure-native:network:Route"
RULE_GROUP = "azure-native:network:FirewallPolicyRuleCollectionGroup"


def firewall(program):
    return program.one(FIREWALL_TYPE)


def firewall_ip(program) -> str:
    return firewall(program).outputs["ipConfigurations"][0]["privateIPAddress"]


def subnets_of(program) -> dict[str, dict]:
    return {s["name"]: s for s in program.one("azure-native:network:VirtualNetwork").inputs["subnets"]}


def routes_of_subnet(program, subnet_name: str) -> list[dict]:
    """The routes of the route table the subnet uses (routes are separate resources naming their table)."""
    table_id = subnets_of(program)[subnet_name]["routeTable"]["id"]
    table = next(t for t in program.of_type("azure-native:network:RouteTable") if t.id == table_id)
    return [r.inputs for r in program.of_type(ROUTE) if r.inputs["routeTableName"] == table.inputs["routeTableName"]]


def rules_of(program, workload: str) -> list[dict]:
    groups = [g for g in program.of_type(RULE_GROUP) if g.inputs["ruleCollectionGroupName"] == workload]
    return [rule for g in groups for collection in g.inputs["ruleCollections"] for rule in collection["rules"]]


def test_prod_declares_the_firewall_in_its_subnet_with_its_policy_and_zones(prod):
    inputs = firewall(prod).inputs
    settings = prod.config["aichat:egress"]["firewall"]
    policy = prod.one("azure-native:network:FirewallPolicy")
    assert inputs["sku"] == {"name": "AZFW_VNet", "tier": settings["sku"]}
    assert policy.inputs["sku"]["tier"] == settings["sku"]  # Azure requires the same tier
    assert policy.inputs["threatIntelMode"] == settings["threatIntelMode"]
    assert inputs["firewallPolicy"]["id"] == policy.id
    assert inputs["zones"] == settings["zones"]
    configuration = inputs["ipConfigurations"][0]
    assert configuration["subnet"]["id"].endswith(f"/subnets/{FIREWALL.name}")
    address = prod.one("azure-native:network:PublicIPAddress", "egress-ip")
    assert configuration["publicIPAddress"]["id"] == address.id and address.inputs["zones"] == settings["zones"]
    assert prod.outputs["egressPublicIp"] == address.outputs["ipAddress"]


def test_the_firewall_address_is_in_its_subnet(prod):
    block = ipaddress.IPv4Network(prod.config["aichat:network"]["subnets"]["firewall"])
    assert ipaddress.IPv4Address(firewall_ip(prod)) in block


@pytest.mark.parametrize("role", EGRESS_ROLES, ids=lambda role: role.key)
def test_every_egress_subnet_sends_all_internet_traffic_to_the_firewall(prod, role):
    routes = routes_of_subnet(prod, role.name)
    default = [r for r in routes if r["addressPrefix"] == "0.0.0.0/0"]
    assert default == [
        {
            "routeName": "to-firewall",
            "addressPrefix": "0.0.0.0/0",
            "nextHopType": "VirtualAppliance",
            "nextHopIpAddress": firewall_ip(prod),
            "routeTableName": default[0]["routeTableName"],
            "resourceGroupName": "rg-aichat-prod",
        }
    ]


def test_api_managements_control_plane_answers_straight_to_the_internet(prod):
    tag, next_hop = API_MANAGEMENT_CONTROL_PLANE_ROUTE
    assert (tag, next_hop) == ("ApiManagement", "Internet")  # the forced-tunnelling requirement
    apim_routes = {(r["addressPrefix"], r["nextHopType"]) for r in routes_of_subnet(prod, API_MANAGEMENT.name)}
    assert (tag, next_hop) in apim_routes
    others = [r for role in EGRESS_ROLES if role is not API_MANAGEMENT for r in routes_of_subnet(prod, role.name)]
    assert all(r["addressPrefix"] == "0.0.0.0/0" for r in others)


def test_each_workloads_rules_allow_only_from_its_own_subnet(prod):
    subnets = prod.config["aichat:network"]["subnets"]
    for workload in EGRESS_RULES:
        for rule in rules_of(prod, workload):
            assert rule["sourceAddresses"] == [subnets[workload]], (workload, rule["name"])


def test_every_listed_rule_is_declared_and_nothing_else(prod):
    for workload, rules in EGRESS_RULES.items():
        declared = {(rule["ruleType"], rule["name"]) for rule in rules_of(prod, workload)}
        listed = {("NetworkRule" if isinstance(rule, NetworkRule) else "ApplicationRule", rule.name) for rule in rules}
        assert declared == listed, workload


def test_no_rule_opens_every_host_name_and_only_ntp_goes_to_any_address(prod):
    for workload in EGRESS_RULES:
        for rule in rules_of(prod, workload):
            assert "*" not in rule.get("targetFqdns", []), (workload, rule["name"])
            if "*" in rule.get("destinationAddresses", []):
                assert (workload, rule["ipProtocols"], rule["destinationPorts"]) == ("apiManagement", ["UDP"], ["123"])


def test_api_management_gets_its_documented_control_plane_dependencies(prod):
    rules = rules_of(prod, "apiManagement")
    tags = {
        (tag, port)
        for r in rules
        for tag in r.get("destinationAddresses", [])
        for port in r.get("destinationPorts", [])
    }
    # virtual-network-reference.md, "Required ports": the bold (required) outbound rows.
    assert {
        ("Storage", "443"),
        ("Sql", "1433"),
        ("AzureKeyVault", "443"),
        ("AzureMonitor", "1886"),
        ("AzureMonitor", "443"),
    } <= tags
    fqdns = {fqdn for r in rules for fqdn in r.get("targetFqdns", [])}
    assert {"login.microsoftonline.com", "swedencentral.login.microsoft.com", "crl.microsoft.com"} <= fqdns
    certificate_checks = next(r for r in rules if r["name"] == "certificate-checks")
    assert {(p["protocolType"], p["port"]) for p in certificate_checks["protocols"]} == {("Http", 80), ("Https", 443)}


def test_build_agents_reach_their_service_the_base_image_and_python_packages(prod):
    rules = rules_of(prod, "buildAgents")
    tags = {tag for r in rules for tag in r.get("destinationAddresses", [])}
    assert {"AzureKeyVault", "Storage", "EventHub", "AzureActiveDirectory", "AzureMonitor"} <= tags
    fqdns = {fqdn for r in rules for fqdn in r.get("targetFqdns", [])}
    assert {"registry-1.docker.io", "pypi.org", "files.pythonhosted.org", "mcr.microsoft.com"} <= fqdns


def test_the_app_reaches_entra_for_sign_in_and_the_jobs_reach_nothing(prod):
    assert [fqdn for r in rules_of(prod, "appService") for fqdn in r.get("targetFqdns", [])] == [
        "login.microsoftonline.com"
    ]
    assert rules_of(prod, "jobs") == [] and EGRESS_RULES["jobs"] == ()


def test_every_rule_names_where_microsoft_or_the_repository_documents_it():
    for rules in EGRESS_RULES.values():
        for rule in rules:
            assert rule.source and rule.why, rule.name
            assert isinstance(rule, (ApplicationRule, NetworkRule))


def test_workloads_that_egress_wait_for_the_firewall_its_rules_and_their_routes(prod):
    ready = {r.urn for r in [firewall(prod), *prod.of_type(RULE_GROUP), *prod.of_type(ROUTE)]}
    for type_token in (
        "azure-native:apimanagement:ApiManagementService",
        "azure-native:containerregistry:AgentPool",
        "azure-native:containerinstance:ContainerGroup",
        "azure-native:web:WebApp",
    ):
        assert ready <= set(prod.one(type_token).depends_on), type_token


def test_the_firewall_waits_for_its_rules_and_sends_its_logs_to_the_workspace(prod):
    assert {g.urn for g in prod.of_type(RULE_GROUP)} <= set(firewall(prod).depends_on)
    setting = prod.one("azure-native:monitor:DiagnosticSetting", "egress-diagnostics")
    assert setting.inputs["resourceUri"] == firewall(prod).id
    assert setting.inputs["logAnalyticsDestinationType"] == "Dedicated"  # the AZFW* tables


def test_dev_keeps_default_outbound_access_and_no_firewall(dev):
    assert dev.of_type(FIREWALL_TYPE) == [] and dev.of_type(ROUTE) == []
    assert "egressPublicIp" not in dev.outputs
    subnets = subnets_of(dev)
    assert subnets["snet-apim"]["defaultOutboundAccess"] is True
    assert subnets["snet-private-endpoints"]["defaultOutboundAccess"] is False
