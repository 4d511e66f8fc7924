"""Azure Container Registry: Premium (private endpoints need it), no admin user, no anonymous pull."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.containerregistry as containerregistry

from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.private_endpoint import CONTAINER_REGISTRY, private_endpoint
from components.roles import BuiltInRole, assign_role


@dataclass
class ContainerRegistryArgs:
    context: StackContext
    resource_group_name: pulumi.Input[str]
    private_endpoint_subnet_id: pulumi.Input[str]
    dns_zone_ids: Mapping[str, pulumi.Input[str]]
    workspace_id: pulumi.Input[str]
    # Identities that pull images (AcrPull on this registry only): name -> principal id.
    pullers: Mapping[str, pulumi.Input[str]]


class ContainerRegistry(pulumi.ComponentResource):
    registry_id: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    login_server: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:registry:ContainerRegistry", name, None, opts)
        context = args.context
        settings = context.config.registry
        build_agents = settings.build_agent_ip_ranges
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=context.unique_name("cr", max_length=50, alphanumeric=True),
            resource_group_name=args.resource_group_name,
            location=context.location,
            sku=containerregistry.SkuArgs(name="Premium"),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            zone_redundancy="Enabled" if settings.zone_redundant else "Disabled",
            # Off unless a dev stack lists build agent ranges; then only those addresses get through.
            public_network_access="Enabled" if build_agents else "Disabled",
            network_rule_set=containerregistry.NetworkRuleSetArgs(
                default_action="Deny",
                ip_rules=[
                    containerregistry.IPRuleArgs(i_p_address_or_range=cidr, action="Allow") for cidr in build_agents
                ],
            ),
            network_rule_bypass_options="None",
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=context.config.protect_stateful_resources),
        )
        self.registry_id = registry.id
        self.registry_name = registry.name
        self.login_server = registry.login_server
        private_endpoint(
            f"{name}-registry",
            target=CONTAINER_REGISTRY,
            service_id=registry.id,
            subnet_id=args.private_endpoint_subnet_id,
            resource_group_name=args.resource_group_name,
            location=context.location,
            dns_zone_ids=args.dns_zone_ids,
            tags=context.tags,
            parent=self,
        )
        send_to_workspace(f"{name}-registry", resource_id=registry.id, workspace_id=args.workspace_id, parent=self)
        for puller, principal_id in args.pullers.items():
            assign_role(
                f"{name}-{puller}-acrpull",
                role=BuiltInRole.ACR_PULL,
                scope=registry.id,
                principal_id=principal_id,
                parent=self,
            )
        self.register_outputs({"registry_id": self.registry_id, "login_server": self.login_server})
