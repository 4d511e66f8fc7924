"""The registry's build agents: inside the VNet, so images are pushed while public access stays off."""

from __future__ import annotations

import pytest

from components.config import ConfigError, parse_stack_config, project_keys
from components.network import BUILD_AGENTS_NSG_RULES

POOL = "azure-native:containerregistry:AgentPool"


def test_the_agent_pool_joins_the_build_agents_subnet_of_this_registry(program):
    pool = program.one(POOL)
    registry = program.one("azure-native:containerregistry:Registry")
    vnet = program.one("azure-native:network:VirtualNetwork")
    settings = program.config["aichat:registry"]["buildAgentPool"]
    assert pool.inputs["registryName"] == registry.outputs["name"]
    assert pool.inputs["virtualNetworkSubnetResourceId"] == f"{vnet.id}/subnets/snet-build-agents"
    assert (pool.inputs["os"], pool.inputs["tier"], pool.inputs["count"]) == (
        "Linux",
        settings["tier"],
        settings["count"],
    )
    assert program.outputs["buildAgentPoolName"] == pool.outputs["name"]
    assert program.outputs["registryName"] == registry.outputs["name"]


def test_the_registry_stays_closed_to_the_internet_while_agents_push(program):
    registry = program.one("azure-native:containerregistry:Registry")
    assert program.config["aichat:registry"]["buildAgentIpRanges"] == []
    assert registry.inputs["publicNetworkAccess"] == "Disabled"


def test_the_build_agents_subnet_is_not_delegated_and_allows_the_services_agents_need(program):
    vnet = program.one("azure-native:network:VirtualNetwork")
    (subnet,) = [s for s in vnet.inputs["subnets"] if s["name"] == "snet-build-agents"]
    assert not subnet.get("delegations")
    nsg = program.one("azure-native:network:NetworkSecurityGroup", "network-nsg-buildAgents")
    allowed = {
        (r["direction"], r["destinationAddressPrefix"], tuple(r["destinationPortRanges"]))
        for r in nsg.inputs["securityRules"]
    }
    for tag in ("AzureKeyVault", "Storage", "EventHub", "AzureActiveDirectory", "AzureMonitor"):
        assert ("Outbound", tag, ("443",)) in allowed
    assert len(BUILD_AGENTS_NSG_RULES) == len({rule.priority for rule in BUILD_AGENTS_NSG_RULES})


def test_disabling_the_pool_removes_it_and_its_output(run_with, stack_values):
    values = stack_values("dev")
    values["aichat:registry"]["buildAgentPool"]["enabled"] = False
    run = run_with("dev", values)
    assert run.of_type(POOL) == []
    assert "buildAgentPoolName" not in run.outputs


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tier", "S9", "aichat:registry.buildAgentPool.tier: 'S9' is not allowed; allowed values: S1, S2, S3, I6"),
        ("count", 11, "aichat:registry.buildAgentPool.count: 11 is out of range; allowed: 0 to 10"),
        ("size", "big", "aichat:registry.buildAgentPool: unknown key(s) size"),
    ],
)
def test_bad_agent_pool_config_is_refused_with_the_key_named(stack_values, key, value, message):
    values = project_keys(stack_values("prod"))
    values["registry"]["buildAgentPool"][key] = value
    with pytest.raises(ConfigError) as error:
        parse_stack_config(values, "prod")
    assert message in str(error.value)
