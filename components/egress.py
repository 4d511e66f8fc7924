"""How the workloads reach the internet: Azure's default outbound access (`default`), or Azure Firewall (`firewall`).

In `firewall` mode (docs/network.md, "Egress"):

- every subnet is private (`defaultOutboundAccess: false`) and each subnet that egresses (the app's VNet
  integration, API Management, the jobs, the registry's build agents) has a route table sending 0.0.0.0/0 to
  the firewall (components/network.py declares the tables; this component adds the routes, which need the
  firewall's private address);
- Azure Firewall in AzureFirewallSubnet with its own public IP (the one address all egress leaves from) and a
  firewall policy whose rules allow exactly what `EGRESS_RULES` lists per workload, from that workload's
  subnet only; everything else is denied (Azure Firewall denies what no rule allows) and logged;
- API Management's control plane: its subnet also routes the `ApiManagement` service tag to `Internet`, so the
  responses to Azure's management calls (inbound on 3443) leave the way they came; without it forced tunnelling
  breaks the management endpoint (azure-docs, includes/api-management-virtual-network-forced-tunneling.md);
- the firewall's logs (application, network and threat-intelligence rule hits, denies) to the workspace.

In `default` mode nothing is declared.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.network as network

from components.config import EgressConfig, FirewallConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.network import API_MANAGEMENT, APP_SERVICE, BUILD_AGENT_SERVICE_TAGS, BUILD_AGENTS, EGRESS_ROLES, JOBS
from components.public_ip import standard_public_ip

HTTPS, HTTP = ("Https", 443), ("Http", 80)

# Where the rules come from (each rule names one).
APIM_REFERENCE = "azure-docs articles/api-management/virtual-network-reference.md"
APIM_FORCED_TUNNEL = "azure-docs includes/api-management-virtual-network-forced-tunneling.md"
ACR_AGENT_POOLS = "azure-management-docs articles/container-registry/tasks-agent-pools.md, 'Add firewall rules'"
MCR_RULES = "microsoft/containerregistry docs/client-firewall-rules.md"
APP_IMAGE = "apps/chat/Dockerfile: FROM python:3.11-slim-bookworm (Docker Hub), pip install (PyPI)"
SIGN_IN = "components/app_service.py: App Service authentication with Entra ID (issuer login.microsoftonline.com)"


@dataclass(frozen=True)
class ApplicationRule:
    """HTTP(S) to these host names (the firewall matches the TLS SNI / Host header; no DNS proxy needed)."""

    name: str
    fqdns: tuple[str, ...]
    why: str
    source: str
    protocols: tuple[tuple[str, int], ...] = (HTTPS,)


@dataclass(frozen=True)
class NetworkRule:
    """IP traffic to these service tags (or addresses) and ports."""

    name: str
    destinations: tuple[str, ...]
    ports: tuple[str, ...]
    why: str
    source: str
    protocol: str = "TCP"


EgressRule = ApplicationRule | NetworkRule

# API Management (classic tier, internal VNet mode). Storage, SQL, Key Vault and Event Hubs also leave through
# the subnet's service endpoints (components/network.py), which keeps that traffic off the firewall; the rules
# cover what service endpoints do not (other regions' storage, for example).
API_MANAGEMENT_RULES: tuple[EgressRule, ...] = (
    NetworkRule("storage", ("Storage",), ("443",), "dependency on Azure Storage (required)", APIM_REFERENCE),
    NetworkRule("sql", ("Sql",), ("1433",), "its configuration in Azure SQL (required)", APIM_REFERENCE),
    NetworkRule("key-vault", ("AzureKeyVault",), ("443",), "certificates in Key Vault (required)", APIM_REFERENCE),
    NetworkRule(
        "monitor",
        ("AzureMonitor",),
        ("1886", "443", "12000"),
        "diagnostics, metrics, resource health and Application Insights (required); 12000 is the internal "
        "diagnostics port, whose destination the reference leaves unnamed (the agent pools' rule names AzureMonitor)",
        f"{APIM_REFERENCE}; {ACR_AGENT_POOLS}",
    ),
    NetworkRule(
        "ntp",
        ("*",),
        ("123",),
        "time synchronisation of the units; the reference names no destination",
        APIM_REFERENCE,
        protocol="UDP",
    ),
    ApplicationRule(
        "entra-id",
        ("login.microsoftonline.com", "{region}.login.microsoft.com"),
        "Entra ID: the gateway validates callers' tokens (validate-azure-ad-token) and gets its own",
        f"{APIM_REFERENCE}, 'Microsoft Entra integration'",
    ),
    ApplicationRule(
        "certificate-checks",
        (
            "mscrl.microsoft.com",
            "crl.microsoft.com",
            "oneocsp.microsoft.com",
            "cacerts.digicert.com",
            "crl3.digicert.com",
            "csp.digicert.com",
        ),
        "TLS certificate chain building and revocation checks (required: 'Validation and management of "
        "certificates', outbound port 80)",
        f"{APIM_REFERENCE}, 'TLS functionality'",
        protocols=(HTTP, HTTPS),
    ),
    ApplicationRule(
        "infrastructure",
        (
            "azurewatsonanalysis-prod.core.windows.net",
            "*.data.microsoft.com",
            "azureprofiler.trafficmanager.net",
            "shavamanifestazurecdnprod1.azureedge.net",
            "shavamanifestcdnprod1.azureedge.net",
            "issuer.pki.azure.com",
            "wdcp.microsoft.com",
            "wdcpalt.microsoft.com",
        ),
        "internal diagnostics, internal PKI and Windows Defender of the gateway's compute",
        f"{APIM_REFERENCE}, 'Internal infrastructure and diagnostics'",
    ),
    ApplicationRule(
        "windows-update",
        (
            "*.update.microsoft.com",
            "*.ctldl.windowsupdate.com",
            "ctldl.windowsupdate.com",
            "download.windowsupdate.com",
            "go.microsoft.com",
        ),
        "Windows Update of the gateway's compute",
        f"{APIM_REFERENCE}, 'Internal infrastructure and diagnostics'",
        protocols=(HTTP, HTTPS),
    ),
)

# The registry's build agents (ACR Tasks agent pool) building apps/chat/Dockerfile.
BUILD_AGENT_RULES: tuple[EgressRule, ...] = (
    NetworkRule(
        "agent-service",
        BUILD_AGENT_SERVICE_TAGS,
        ("443",),
        "the agent pool's own service dependencies",
        ACR_AGENT_POOLS,
    ),
    NetworkRule("agent-monitor", ("AzureMonitor",), ("443", "12000"), "the agents' diagnostics", ACR_AGENT_POOLS),
    ApplicationRule(
        "base-image",
        ("registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com"),
        "the base image on Docker Hub: registry API, token service, layer downloads",
        APP_IMAGE,
    ),
    ApplicationRule(
        "microsoft-artifact-registry",
        ("mcr.microsoft.com", "*.data.mcr.microsoft.com"),
        "images ACR Tasks itself pulls (mcr.microsoft.com/acr/...) when its cached copy is not the tagged one",
        f"{ACR_AGENT_POOLS}; {MCR_RULES}",
    ),
    ApplicationRule("python-packages", ("pypi.org", "files.pythonhosted.org"), "pip install of the app", APP_IMAGE),
)

# The web app (its VNet integration routes all its traffic, image pulls included). Everything else it reaches
# (PostgreSQL, Key Vault, the registry, the AI gateway) is inside the VNet and never meets the firewall.
APP_RULES: tuple[EgressRule, ...] = (
    ApplicationRule(
        "entra-sign-in",
        ("login.microsoftonline.com",),
        "App Service authentication: OpenID metadata, signing keys and the token exchange of each sign-in",
        SIGN_IN,
    ),
)

# Subnet role -> what its workload may reach. The ingestion job reaches only the VNet (PostgreSQL, the
# gateway; its identity's tokens come from the local identity endpoint), so it gets no rule at all.
EGRESS_RULES: Mapping[str, tuple[EgressRule, ...]] = {
    APP_SERVICE.key: APP_RULES,
    API_MANAGEMENT.key: API_MANAGEMENT_RULES,
    JOBS.key: (),
    BUILD_AGENTS.key: BUILD_AGENT_RULES,
}
# Routes on API Management's subnet besides the default route: the control plane's return path (prefix a
# service tag, next hop Internet), as the forced-tunnelling section requires.
API_MANAGEMENT_CONTROL_PLANE_ROUTE = ("ApiManagement", "Internet")


@dataclass
class EgressArgs:
    context: StackContext
    settings: EgressConfig  # mode; in firewall mode the firewall's SKU, threat intelligence and zones
    resource_group_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]  # Log Analytics, for the firewall's diagnostics
    # Subnet role -> its block, for the rules' sources (aichat:network.subnets).
    subnet_blocks: Mapping[str, ipaddress.IPv4Network]
    firewall_subnet_id: pulumi.Input[str] | None = None  # AzureFirewallSubnet (mode firewall)
    # Subnet role -> its route table's name (Network.route_table_names; mode firewall).
    route_table_names: Mapping[str, pulumi.Input[str]] | None = None


class Egress(pulumi.ComponentResource):
    """`ready`: what a workload that egresses must wait for (firewall, rules, routes); empty in default mode."""

    ready: list[pulumi.Resource]
    public_ip: pulumi.Output[str] | None  # the one address all egress leaves from (for partners' allow-lists)
    private_ip: pulumi.Output[str] | None  # the next hop of every egress route

    def __init__(self, name: str, args: EgressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:network:Egress", name, None, opts)
        settings = args.settings.firewall
        self.ready, self.public_ip, self.private_ip = [], None, None
        if not args.settings.through_firewall or settings is None:
            self.register_outputs({})
            return
        if args.firewall_subnet_id is None or not args.route_table_names:
            raise ValueError(f"{name}: mode firewall needs AzureFirewallSubnet and the egress subnets' route tables")
        policy = self._policy(name, args, settings)
        rule_groups = self._rules(name, args, policy)
        address = standard_public_ip(
            f"{name}-ip",
            context=args.context,
            name_part="afw",
            resource_group_name=args.resource_group_name,
            zones=settings.zones,
            parent=self,
        )
        firewall = network.AzureFirewall(
            f"{name}-firewall",
            azure_firewall_name=args.context.name("afw"),
            resource_group_name=args.resource_group_name,
            location=args.context.location,
            # AZFW_VNet: a firewall in a VNet (AZFW_Hub is Virtual WAN's); REST spec azureFirewall.json,
            # AzureFirewallSku. The tier (Standard/Premium) must match the policy's (firewall/premium-features.md).
            sku=network.AzureFirewallSkuArgs(name="AZFW_VNet", tier=settings.sku),
            firewall_policy=network.SubResourceArgs(id=policy.id),
            ip_configurations=[
                network.AzureFirewallIPConfigurationArgs(
                    name="egress",
                    subnet=network.SubResourceArgs(id=args.firewall_subnet_id),
                    public_ip_address=network.SubResourceArgs(id=address.id),
                )
            ],
            zones=list(settings.zones) or None,
            tags=dict(args.context.tags),
            # The policy's rules first: a firewall without them would deny every workload's first calls.
            opts=pulumi.ResourceOptions(parent=self, depends_on=rule_groups),
        )
        send_to_workspace(name, resource=firewall, workspace_id=args.workspace_id, parent=self)
        self.private_ip = firewall.ip_configurations.apply(lambda configs: configs[0].private_ip_address)
        self.public_ip = address.ip_address
        routes = self._routes(name, args, self.private_ip)
        self.ready = [firewall, *rule_groups, *routes]
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})

    def _policy(self, name: str, args: EgressArgs, settings: FirewallConfig) -> network.FirewallPolicy:
        context = args.context
        return network.FirewallPolicy(
            f"{name}-policy",
            firewall_policy_name=context.name("afwp"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            sku=network.FirewallPolicySkuArgs(tier=settings.sku),  # must match the firewall's tier
            threat_intel_mode=settings.threat_intel_mode,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _rules(
        self, name: str, args: EgressArgs, policy: network.FirewallPolicy
    ) -> list[network.FirewallPolicyRuleCollectionGroup]:
        """One rule collection group per workload, each allowing only from that workload's subnet.

        Azure changes one group of a policy at a time, so each group waits for the one before it."""
        groups: list[network.FirewallPolicyRuleCollectionGroup] = []
        for index, (workload, rules) in enumerate((w, r) for w, r in EGRESS_RULES.items() if r):
            source = str(args.subnet_blocks[workload])
            collections = rule_collections(workload, rules, source, args.context.location)
            groups.append(
                network.FirewallPolicyRuleCollectionGroup(
                    f"{name}-rules-{workload}",
                    rule_collection_group_name=workload,
                    firewall_policy_name=policy.name,
                    resource_group_name=args.resource_group_name,
                    # Lower numbers are processed first, 100-65000 (firewall/rule-processing.md); one group per
                    # workload, apart, since all of them only allow.
                    priority=200 + 100 * index,
                    rule_collections=collections,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=groups[-1:]),
                )
            )
        return groups

    def _routes(self, name: str, args: EgressArgs, firewall_ip: pulumi.Output[str]) -> list[network.Route]:
        """0.0.0.0/0 to the firewall on every egress subnet; API Management's control plane straight out."""
        route_tables = args.route_table_names or {}
        routes = []
        for role in EGRESS_ROLES:
            common = dict(route_table_name=route_tables[role.key], resource_group_name=args.resource_group_name)
            routes.append(
                network.Route(
                    f"{name}-route-{role.key}",
                    route_name="to-firewall",
                    address_prefix="0.0.0.0/0",
                    next_hop_type="VirtualAppliance",
                    next_hop_ip_address=firewall_ip,
                    opts=pulumi.ResourceOptions(parent=self),
                    **common,
                )
            )
            if role is API_MANAGEMENT:
                tag, next_hop = API_MANAGEMENT_CONTROL_PLANE_ROUTE
                routes.append(
                    network.Route(
                        f"{name}-route-apim-control-plane",
                        route_name="apim-control-plane",
                        address_prefix=tag,
                        next_hop_type=next_hop,
                        opts=pulumi.ResourceOptions(parent=self),
                        **common,
                    )
                )
        return routes


def rule_collections(
    workload: str, rules: Sequence[EgressRule], source: str, region: str
) -> list[network.FirewallPolicyFilterRuleCollectionArgs]:
    """A workload's allow rules as filter rule collections: network rules and application rules apart."""
    network_rules = [
        network.NetworkRuleArgs(
            rule_type="NetworkRule",
            name=rule.name,
            # Kept short for the portal's rule list (no limit is documented in the REST spec; unverified).
            description=rule.why[:140],
            ip_protocols=[rule.protocol],
            source_addresses=[source],
            destination_addresses=list(rule.destinations),
            destination_ports=list(rule.ports),
        )
        for rule in rules
        if isinstance(rule, NetworkRule)
    ]
    application_rules = [
        network.ApplicationRuleArgs(
            rule_type="ApplicationRule",
            name=rule.name,
            description=rule.why[:140],
            source_addresses=[source],
            protocols=[
                network.FirewallPolicyRuleApplicationProtocolArgs(protocol_type=kind, port=port)
                for kind, port in rule.protocols
            ],
            target_fqdns=[fqdn.format(region=region) for fqdn in rule.fqdns],
        )
        for rule in rules
        if isinstance(rule, ApplicationRule)
    ]
    collections = []
    for priority, (kind, members) in enumerate((("network", network_rules), ("application", application_rules))):
        if members:
            collections.append(
                network.FirewallPolicyFilterRuleCollectionArgs(
                    rule_collection_type="FirewallPolicyFilterRuleCollection",
                    name=f"{workload}-{kind}",
                    # Inside a group, collections by priority too (firewall/policy-rule-sets.md): network first.
                    priority=1000 + 100 * priority,
                    action=network.FirewallPolicyFilterRuleCollectionActionArgs(type="Allow"),
                    rules=members,
                )
            )
    return collections
