"""Azure Container Registry: Premium (private endpoints need it), no admin user, no anonymous pull."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.containerregistry as containerregistry

from components.config import RegistryConfig
from components.context import StackContext
from components.private_endpoint import CONTAINER_REGISTRY, PrivateAccess, connect_privately
from components.roles import BuiltInRole, assign_role


@dataclass
class ContainerRegistryArgs:
    context: StackContext
    settings: RegistryConfig  # zone redundancy and the dev-only build agent IP ranges
    access: PrivateAccess  # resource group, endpoint subnet, DNS zones, workspace
    protect: bool  # against `pulumi destroy` and replacement (prod): the images live only here
    # Identities that pull images (AcrPull on this registry only): name -> principal id.
    pullers: Mapping[str, pulumi.Input[str]]
    # True when Container Instances pull from it with a managed identity (the ingestion job). ACI pulls
    # from outside the VNet's private endpoint, as one of the registry's trusted services, so they must be
    # let through; App Service pulls through the VNet and needs no exception.
    trusted_services_pull: bool = False


class ContainerRegistry(pulumi.ComponentResource):
    registry_id: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    login_server: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:registry:ContainerRegistry", name, None, opts)
        context = args.context
        settings = args.settings
        build_agents = settings.build_agent_ip_ranges
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=context.unique_name("cr", max_length=50, alphanumeric=True),
            resource_group_name=args.access.resource_group_name,
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
            # Source: Container Instances' "Deploy from Azure Container Registry using a managed identity"
            # (azure-compute-docs, container-instances/using-azure-container-registry-mi.md) and the
            # registry's trusted services list (container-registry/allow-access-trusted-services.md).
            network_rule_bypass_options="AzureServices" if args.trusted_services_pull else "None",
            # No image leaves by import or transfer into another registry (data exfiltration). Azure accepts
            # this only while public network access is off (container-registry/data-loss-prevention.md), and
            # refuses public access while it is disabled: dev's build-agent switch turns it back on explicitly.
            policies=containerregistry.PoliciesArgs(
                export_policy=containerregistry.ExportPolicyArgs(status="enabled" if build_agents else "disabled")
            ),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.registry_id = registry.id
        self.registry_name = registry.name
        self.login_server = registry.login_server
        connect_privately(
            f"{name}-registry",
            target=CONTAINER_REGISTRY,
            service=registry,
            access=args.access,
            location=context.location,
            tags=context.tags,
            parent=self,
        )
        for puller, principal_id in args.pullers.items():
            assign_role(
                f"{name}-{puller}-acrpull",
                role=BuiltInRole.ACR_PULL,
                scope=registry.id,
                principal_id=principal_id,
                parent=self,
            )
        self.register_outputs({"registry_id": self.registry_id, "login_server": self.login_server})
