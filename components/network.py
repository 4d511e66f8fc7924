"""The private network: one VNet, a subnet per role, an NSG on every subnet, their diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    # False makes the subnet private: nothing reaches the internet unless we route it there. With egress
    # through the firewall every subnet is private (NetworkArgs.egress_through_firewall).
    default_outbound_access: bool | None = None
    # Its workload sends traffic to the internet: with egress through the firewall it gets a route table
    # sending 0.0.0.0/0 there (components/egress.py adds the routes).
    egresses: bool = False
    # Azure refuses an NSG on some platform subnets (AzureFirewallSubnet).
    has_nsg: bool = True


APP_SERVICE = SubnetRole("appService", "snet-app", delegation="Microsoft.Web/serverFarms", egresses=True)
PRIVATE_ENDPOINTS = SubnetRole(
    "privateEndpoints", "snet-private-endpoints", private_endpoint_policies="Enabled", default_outbound_access=False
)
# API Management (classic tiers, internal mode) needs no delegation but reaches Azure service tags
# (Storage, SQL, Key Vault, Monitor) for its own control plane, so it keeps outbound access (or, with
# egress through the firewall, its route table and the firewall's rules for it).
API_MANAGEMENT = SubnetRole("apiManagement", "snet-apim", default_outbound_access=True, egresses=True)
JOBS = SubnetRole("jobs", "snet-jobs", delegation="Microsoft.ContainerInstance/containerGroups", egresses=True)
# The registry's build agent pool (ACR Tasks): no delegation; it pulls base images and packages from
# the internet while building, so it keeps outbound access (or goes through the firewall).
BUILD_AGENTS = SubnetRole("buildAgents", "snet-build-agents", default_outbound_access=True, egresses=True)
# Ingress mode applicationGateway: a subnet of its own with nothing else in it. Its traffic to the
# internet (management, health, logs) must not go through an appliance: Application Gateway v2 does not
# support 0.0.0.0/0 to a virtual appliance (configuration-infrastructure.md, "v2 unsupported scenarios"),
# so it never gets the firewall's route.
APPLICATION_GATEWAY = SubnetRole("applicationGateway", "snet-agw")
# Egress mode firewall: the name Azure Firewall requires; Azure refuses an NSG on it.
# Azure Firewall needs a subnet named AzureFirewallSubnet, and takes no NSG on it (firewall/firewall-faq.yml,
# "Are Network Security Groups (NSGs) supported on the AzureFirewallSubnet?").
FIREWALL = SubnetRole("firewall", "AzureFirewallSubnet", has_nsg=False)

SUBNET_ROLES = (APP_SERVICE, PRIVATE_ENDPOINTS, API_MANAGEMENT, JOBS, BUILD_AGENTS, APPLICATION_GATEWAY, FIREWALL)
# The roles every stack had before ingress and egress modes (issue 11): only their NSGs' diagnostic settings
# were ever declared in the Observability component, so only those carry the alias from there.
ROLES_BEFORE_INGRESS_AND_EGRESS = (APP_SERVICE, PRIVATE_ENDPOINTS, API_MANAGEMENT, JOBS, BUILD_AGENTS)
EGRESS_ROLES = tuple(role for role in SUBNET_ROLES if role.egresses)
# With API Management's dependencies force-tunnelled, Microsoft "strongly recommends" service endpoints
# from its subnet to the services that support them, so that traffic stays on the backbone instead of the
# firewall (azure-docs, includes/api-management-virtual-network-forced-tunneling.md).
API_MANAGEMENT_SERVICE_ENDPOINTS = ("Microsoft.Sql", "Microsoft.Storage", "Microsoft.EventHub", "Microsoft.KeyVault")


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
# The service tags the agents reach on 443 (the firewall's rules allow the same, components/egress.py).
BUILD_AGENT_SERVICE_TAGS = ("AzureKeyVault", "Storage", "EventHub", "AzureActiveDirectory")
BUILD_AGENTS_NSG_RULES = tuple(
    NsgRule(f"Allow{tag}", 100 + 10 * index, "Outbound", "Tcp", "VirtualNetwork", tag, "443", "build agent service")
    for index, tag in enumerate((*BUILD_AGENT_SERVICE_TAGS, "AzureMonitor"))
)

# Application Gateway v2 (configuration-infrastructure.md, "Required security rules"): clients on the
# listener ports, GatewayManager on 65200-65535 (backend health, locked down by Azure certificates) and
# Azure Load Balancer probes. Outbound internet must stay open (the default rules do that).
APPLICATION_GATEWAY_NSG_RULES = (
    NsgRule("AllowHttpsFromInternet", 100, "Inbound", "Tcp", "Internet", "VirtualNetwork", "443", "users"),
    NsgRule("AllowHttpFromInternet", 110, "Inbound", "Tcp", "Internet", "VirtualNetwork", "80", "redirect to https"),
    NsgRule("AllowGatewayManager", 120, "Inbound", "Tcp", "GatewayManager", "*", "65200-65535", "infrastructure"),
    NsgRule("AllowAzureLoadBalancer", 130, "Inbound", "*", "AzureLoadBalancer", "*", "*", "health probes"),
)

NSG_RULES = {
    API_MANAGEMENT.key: API_MANAGEMENT_NSG_RULES,
    BUILD_AGENTS.key: BUILD_AGENTS_NSG_RULES,
    APPLICATION_GATEWAY.key: APPLICATION_GATEWAY_NSG_RULES,
}


@dataclass
class NetworkArgs:
    context: StackContext
    settings: NetworkConfig  # address space and a CIDR per subnet role
    resource_group_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]  # Log Analytics, for the VNet's and NSGs' diagnostics
    # aichat:egress.mode firewall: every subnet private (defaultOutboundAccess false), a route table on each
    # subnet that egresses (EGRESS_ROLES; components/egress.py fills them once the firewall exists), and
    # service endpoints from API Management's subnet.
    egress_through_firewall: bool = False


class Network(pulumi.ComponentResource):
    """VNet and subnets. Every subnet gets its own NSG (and APIM's the rules it needs), but AzureFirewallSubnet."""

    vnet_id: pulumi.Output[str]
    subnet_ids: dict[str, pulumi.Output[str]]
    nsg_ids: dict[str, pulumi.Output[str]]
    # Subnet role -> name of its route table (egress through the firewall only; empty otherwise).
    route_table_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:network:Network", name, None, opts)
        context = args.context
        settings = args.settings
        roles = [role for role in SUBNET_ROLES if role.key in settings.subnets]
        private = args.egress_through_firewall

        security_groups = {role.key: self._security_group(name, role, args) for role in roles if role.has_nsg}
        self.nsg_ids = {key: nsg.id for key, nsg in security_groups.items()}
        route_tables = {role.key: self._route_table(name, role, args) for role in roles if private and role.egresses}
        self.route_table_names = {key: table.name for key, table in route_tables.items()}

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
                    network_security_group=network.NetworkSecurityGroupArgs(id=security_groups[role.key].id)
                    if role.has_nsg
                    else None,
                    delegations=[
                        network.DelegationArgs(name=role.delegation.replace("/", "-"), service_name=role.delegation)
                    ]
                    if role.delegation
                    else None,
                    private_endpoint_network_policies=role.private_endpoint_policies,
                    # Azure Policy's built-in "Subnets should be private" (7bca8353-aa3b-429b-904a-9229c4385837)
                    # audits every subnet of the VNet, platform subnets included.
                    default_outbound_access=False if private else role.default_outbound_access,
                    route_table=network.RouteTableArgs(id=route_tables[role.key].id)
                    if role.key in route_tables
                    else None,
                    service_endpoints=[
                        network.ServiceEndpointPropertiesFormatArgs(service=service)
                        for service in API_MANAGEMENT_SERVICE_ENDPOINTS
                    ]
                    if private and role is API_MANAGEMENT
                    else None,
                )
                for role in roles
            ],
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vnet_id = vnet.id
        self.subnet_ids = {
            role.key: vnet.id.apply(lambda vnet_id, subnet=role.name: f"{vnet_id}/subnets/{subnet}") for role in roles
        }
        self._send_diagnostics(f"{name}-vnet", vnet, args.workspace_id, metrics=True, moved=True)
        moved = {role.key for role in ROLES_BEFORE_INGRESS_AND_EGRESS}
        for key, nsg in security_groups.items():
            # NSGs have no metrics.
            self._send_diagnostics(f"{name}-nsg-{key}", nsg, args.workspace_id, metrics=False, moved=key in moved)
        self.register_outputs(
            {"vnet_id": self.vnet_id, "subnet_ids": self.subnet_ids, "route_table_names": self.route_table_names}
        )

    def _route_table(self, name: str, role: SubnetRole, args: NetworkArgs) -> network.RouteTable:
        """Declared empty: its routes need the firewall's private address, and the firewall needs this VNet, which
        needs the table, so components/egress.py adds them as network.Route resources once the firewall exists
        (Microsoft's baseline does the same: a placeholder table, routes added with the firewall;
        Azure-Samples/openai-end-to-end-baseline, network.bicep and azure-firewall.bicep). Keep `routes` unset
        here: a table that lists routes would own them all and remove the firewall's on its next update."""
        # Routes learnt from a VPN or ExpressRoute gateway must not override the way to the firewall
        # (virtual-network/virtual-networks-udr-overview.md, "Border gateway protocol").
        return self._for_subnet(network.RouteTable, "rt", name, role, args, disable_bgp_route_propagation=True)

    def _for_subnet(
        self, resource_type: type, abbreviation: str, name: str, role: SubnetRole, args: NetworkArgs, **properties: Any
    ) -> Any:
        """A resource of one subnet (its NSG, its route table): `<abbr>-<prefix>-<env>-<subnet>`, in the group."""
        context = args.context
        name_input = {"nsg": "network_security_group_name", "rt": "route_table_name"}[abbreviation]
        return resource_type(
            f"{name}-{abbreviation}-{role.key}",
            resource_group_name=args.resource_group_name,
            location=context.location,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
            **{name_input: context.name(abbreviation, role.name.removeprefix("snet-"))},
            **properties,
        )

    def _send_diagnostics(
        self,
        resource_name: str,
        resource: pulumi.CustomResource,
        workspace_id: pulumi.Input[str],
        *,
        metrics: bool,
        moved: bool,
    ) -> None:
        # Until issue 15 the workspace came after the network and the Observability component sent these
        # settings: the alias keeps them in older stacks (`moved`: the setting existed then).
        send_to_workspace(
            resource_name,
            resource=resource,
            workspace_id=workspace_id,
            parent=self,
            metrics=metrics,
            aliases=[moved_from("aichat:observability:Observability", "observability")] if moved else (),
        )

    def _security_group(self, name: str, role: SubnetRole, args: NetworkArgs) -> network.NetworkSecurityGroup:
        return self._for_subnet(
            network.NetworkSecurityGroup,
            "nsg",
            name,
            role,
            args,
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
                    destination_port_ranges=rule.ports.split(",") if rule.ports != "*" else None,
                    destination_port_range="*" if rule.ports == "*" else None,
                )
                for rule in NSG_RULES.get(role.key, ())
            ],
        )
