"""The private network: one VNet, a subnet per role, an NSG on every subnet, their diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.network as network

from components.aliases import moved_from
from components.config import NetworkConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace


@dataclass(frozen=True)
class SubnetRole:
    """What a subnet is for: the config key of its CIDR, its Azure name, and what Azure needs on it."""

    key: str
    name: str
    delegation: str | None = None
    # Private endpoints obey NSGs only when network policies are enabled on their subnet.
    private_endpoint_policies: str = "Disabled"
    # False makes the subnet private: nothing reaches the internet unless we route it there.
    default_outbound_access: bool | None = None


APP_SERVICE = SubnetRole("appService", "snet-app", delegation="Microsoft.Web/serverFarms")
PRIVATE_ENDPOINTS = SubnetRole(
    "privateEndpoints", "snet-private-endpoints", private_endpoint_policies="Enabled", default_outbound_access=False
)
# API Management (classic tiers, internal mode) needs no delegation but reaches Azure service tags
# (Storage, SQL, Key Vault, Monitor) for its own control plane, so it keeps outbound access.
API_MANAGEMENT = SubnetRole("apiManagement", "snet-apim", default_outbound_access=True)
JOBS = SubnetRole("jobs", "snet-jobs", delegation="Microsoft.ContainerInstance/containerGroups")
# The registry's build agent pool (ACR Tasks): no delegation; it pulls base images and packages from
# the internet while building, so it keeps outbound access (a NAT gateway can replace this).
BUILD_AGENTS = SubnetRole("buildAgents", "snet-build-agents", default_outbound_access=True)

SUBNET_ROLES = (APP_SERVICE, PRIVATE_ENDPOINTS, API_MANAGEMENT, JOBS, BUILD_AGENTS)


@dataclass(frozen=True)
class NsgRule:
    name: str
    priority: int
    direction: str
    protocol: str
    source: str
    destination: str
    ports: str
    why: str


# API Management in a VNet (stv2 platform): Microsoft's "virtual network configuration reference".
API_MANAGEMENT_NSG_RULES = (
    NsgRule("AllowApimManagement", 100, "Inbound", "Tcp", "ApiManagement", "VirtualNetwork", "3443", "control plane"),
    NsgRule("AllowAzureLoadBalancer", 110, "Inbound", "Tcp", "AzureLoadBalancer", "VirtualNetwork", "6390", "health"),
    NsgRule("AllowVnetHttps", 120, "Inbound", "Tcp", "VirtualNetwork", "VirtualNetwork", "443", "app -> gateway"),
    NsgRule("AllowStorage", 100, "Outbound", "Tcp", "VirtualNetwork", "Storage", "443", "service dependencies"),
    NsgRule("AllowSql", 110, "Outbound", "Tcp", "VirtualNetwork", "Sql", "1433", "service configuration"),
    NsgRule("AllowKeyVault", 120, "Outbound", "Tcp", "VirtualNetwork", "AzureKeyVault", "443", "certificates"),
    NsgRule("AllowMonitor", 130, "Outbound", "Tcp", "VirtualNetwork", "AzureMonitor", "1886,443", "diagnostics"),
    # Marked required in the current reference: CRL/OCSP checks of Microsoft- and customer-managed certificates.
    NsgRule("AllowCertificateChecks", 140, "Outbound", "Tcp", "VirtualNetwork", "Internet", "80", "certificates"),
    # Entra ID: the gateway validates callers' tokens (validate-azure-ad-token) and gets its own.
    NsgRule("AllowEntraId", 150, "Outbound", "Tcp", "VirtualNetwork", "AzureActiveDirectory", "443", "Entra ID"),
)

# ACR Tasks agent pools in a VNet: Microsoft's "Run an ACR task on a dedicated agent pool". The default
# NSG rules allow this already; listing them keeps the agents working if someone adds a deny-all rule.
BUILD_AGENTS_NSG_RULES = tuple(
    NsgRule(f"Allow{tag}", 100 + 10 * index, "Outbound", "Tcp", "VirtualNetwork", tag, "443", "build agent service")
    for index, tag in enumerate(("AzureKeyVault", "Storage", "EventHub", "AzureActiveDirectory", "AzureMonitor"))
)

NSG_RULES = {API_MANAGEMENT.key: API_MANAGEMENT_NSG_RULES, BUILD_AGENTS.key: BUILD_AGENTS_NSG_RULES}


@dataclass
class NetworkArgs:
    context: StackContext
    settings: NetworkConfig  # address space and a CIDR per subnet role
    resource_group_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]  # Log Analytics, for the VNet's and NSGs' diagnostics


class Network(pulumi.ComponentResource):
    """VNet and subnets. Every subnet gets its own NSG (and APIM's the rules it needs)."""

    vnet_id: pulumi.Output[str]
    subnet_ids: dict[str, pulumi.Output[str]]
    nsg_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:network:Network", name, None, opts)
        context = args.context
        settings = args.settings

        security_groups = {role.key: self._security_group(name, role, args) for role in SUBNET_ROLES}
        self.nsg_ids = {key: nsg.id for key, nsg in security_groups.items()}

        # Subnets are declared inside the VNet, not as separate resources: a VNet update would
        # otherwise remove subnets it does not list.
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=context.name("vnet"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[str(settings.address_space)]),
            subnets=[
                network.SubnetArgs(
                    name=role.name,
                    address_prefix=str(settings.subnets[role.key]),
                    network_security_group=network.NetworkSecurityGroupArgs(id=security_groups[role.key].id),
                    delegations=[
                        network.DelegationArgs(name=role.delegation.replace("/", "-"), service_name=role.delegation)
                    ]
                    if role.delegation
                    else None,
                    private_endpoint_network_policies=role.private_endpoint_policies,
                    default_outbound_access=role.default_outbound_access,
                )
                for role in SUBNET_ROLES
            ],
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vnet_id = vnet.id
        self.subnet_ids = {
            role.key: vnet.id.apply(lambda vnet_id, subnet=role.name: f"{vnet_id}/subnets/{subnet}")
            for role in SUBNET_ROLES
        }
        self._send_diagnostics(f"{name}-vnet", vnet, args.workspace_id, metrics=True)
        for key, nsg in security_groups.items():
            self._send_diagnostics(f"{name}-nsg-{key}", nsg, args.workspace_id, metrics=False)  # NSGs have none
        self.register_outputs({"vnet_id": self.vnet_id, "subnet_ids": self.subnet_ids})

    def _send_diagnostics(
        self, resource_name: str, resource: pulumi.CustomResource, workspace_id: pulumi.Input[str], *, metrics: bool
    ) -> None:
        # Until issue 15 the workspace came after the network and the Observability component sent these
        # settings: the alias keeps them in older stacks.
        send_to_workspace(
            resource_name,
            resource=resource,
            workspace_id=workspace_id,
            parent=self,
            metrics=metrics,
            aliases=[moved_from("aichat:observability:Observability", "observability")],
        )

    def _security_group(self, name: str, role: SubnetRole, args: NetworkArgs) -> network.NetworkSecurityGroup:
        context = args.context
        return network.NetworkSecurityGroup(
            f"{name}-nsg-{role.key}",
            network_security_group_name=context.name("nsg", role.name.removeprefix("snet-")),
            resource_group_name=args.resource_group_name,
            location=context.location,
            security_rules=[
                network.SecurityRuleArgs(
                    name=rule.name,
                    description=rule.why,
                    priority=rule.priority,
                    direction=rule.direction,
                    access="Allow",
                    protocol=rule.protocol,
                    source_address_prefix=rule.source,
                    source_port_range="*",
                    destination_address_prefix=rule.destination,
                    destination_port_ranges=rule.ports.split(","),
                )
                for rule in NSG_RULES.get(role.key, ())
            ],
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
