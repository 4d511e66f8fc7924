"""How images reach a registry whose public access is off: the registry's own build agents in the VNet.

An ACR Tasks dedicated agent pool joins the `buildAgents` subnet. The pipeline runs
`az acr build --agent-pool <pool>`: the Azure CLI talks only to Azure Resource Manager (upload of the
build context, scheduling, log streaming), and the agents inside the VNet build the image and push it
through the registry's private endpoint. No runner of ours needs network access to the registry.

The dev switch `aichat:registry.buildAgentIpRanges` is the simpler alternative for teams that build
elsewhere (their agent's public address is let through the registry firewall); prod refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.containerregistry as containerregistry

from components.config import BuildAgentPoolConfig
from components.context import StackContext

# Agent pool names: 3-20 letters, digits and dashes; one pool per registry is enough here.
AGENT_POOL_NAME = "vnet-build"


@dataclass
class BuildAgentsArgs:
    context: StackContext
    settings: BuildAgentPoolConfig  # whether there is a pool, its tier and agent count
    resource_group_name: pulumi.Input[str]
    registry_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    # What must exist before the agents start: with egress through the firewall, its route and rules.
    depends_on: Sequence[pulumi.Resource] = ()


class BuildAgents(pulumi.ComponentResource):
    """The registry's dedicated agent pool in the VNet (nothing when `registry.buildAgentPool.enabled` is false)."""

    registry_name: pulumi.Output[str]
    agent_pool_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: BuildAgentsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:registry:BuildAgents", name, None, opts)
        settings = args.settings
        self.registry_name = pulumi.Output.from_input(args.registry_name)
        self.agent_pool_name = None
        if settings.enabled:
            pool = containerregistry.AgentPool(
                f"{name}-pool",
                agent_pool_name=AGENT_POOL_NAME,
                registry_name=self.registry_name,
                resource_group_name=args.resource_group_name,
                location=args.context.location,
                os="Linux",
                tier=settings.tier,
                count=settings.count,
                virtual_network_subnet_resource_id=args.subnet_id,
                tags=dict(args.context.tags),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            self.agent_pool_name = pool.name
        self.register_outputs({"registry_name": self.registry_name, "agent_pool_name": self.agent_pool_name})
