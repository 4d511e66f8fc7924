"""Mandatory rules that need the whole stack: relations between resources.

Relations are found the way Azure nests resource ids (a child's id starts with its parent's id), and,
for previews and the offline plan where ids may be placeholders, by the name inputs that point at the
parent (a DNS zone group's `privateEndpointName`, a diagnostic setting's `resourceUri`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from .base import (
    PRODUCTION_ENVIRONMENTS,
    azure_name,
    environment_of,
    is_child_id,
    items,
    of_type,
    prop,
    resource_id,
    same_text,
    short_type,
    stack_rule,
)

# ---------------------------------------------------------------------------------------------------
# Every private endpoint registers its address in private DNS.
# ---------------------------------------------------------------------------------------------------


def _zone_group_belongs_to(group: PolicyResource, endpoint: PolicyResource) -> bool:
    if is_child_id(resource_id(group), resource_id(endpoint)) or group.parent is endpoint:
        return True
    return same_text(
        prop(group.props, "privateEndpointName"), azure_name(endpoint, "privateEndpointName")
    ) and same_text(prop(group.props, "resourceGroupName"), prop(endpoint.props, "resourceGroupName"))


def _endpoints_without_dns(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    groups = of_type(resources, "network:PrivateDnsZoneGroup")
    for endpoint in of_type(resources, "network:PrivateEndpoint"):
        own = [g for g in groups if _zone_group_belongs_to(g, endpoint)]
        if not own:
            yield f"private endpoint {endpoint.name} has no private DNS zone group", endpoint.urn
        elif not any(prop(g.props, "privateDnsZoneConfigs") for g in own):
            yield f"private endpoint {endpoint.name} has a DNS zone group with no zones", endpoint.urn


# ---------------------------------------------------------------------------------------------------
# Workload identities get narrow data-plane roles, never control over the subscription or its access.
# ---------------------------------------------------------------------------------------------------

PRIVILEGED_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}


def _workload_principals(resources: Sequence[PolicyResource]) -> set[str]:
    """Principal ids of the managed identities the stack creates (user-assigned and system-assigned)."""
    principals = {prop(r.props, "principalId") for r in of_type(resources, "managedidentity:UserAssignedIdentity")}
    principals |= {prop(r.props, "identity.principalId") for r in resources}
    return {p.lower() for p in principals if isinstance(p, str) and p}


def _privileged_workload_roles(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    workloads = _workload_principals(resources)
    for assignment in of_type(resources, "authorization:RoleAssignment"):
        role_id = str(prop(assignment.props, "roleDefinitionId", "")).rsplit("/", 1)[-1].lower()
        role = PRIVILEGED_ROLES.get(role_id)
        principal = str(prop(assignment.props, "principalId", "")).lower()
        is_workload = principal in workloads or same_text(prop(assignment.props, "principalType"), "ServicePrincipal")
        if role and is_workload:
            yield f"role assignment {assignment.name} grants {role} to workload identity {principal}", assignment.urn


# ---------------------------------------------------------------------------------------------------
# Every service that can send diagnostic logs or metrics does, to the stack's workspace.
# ---------------------------------------------------------------------------------------------------

# What each service with diagnostic settings can send: its logs, its metrics, or both (Azure Monitor's
# supported-logs and supported-metrics references). Application Insights is left out on purpose: a
# workspace-based component already writes its telemetry into the Log Analytics workspace.
LOGS, METRICS = "logs", "metrics"
DIAGNOSTIC_SIGNALS: dict[str, tuple[str, ...]] = {
    "keyvault:Vault": (LOGS, METRICS),
    "containerregistry:Registry": (LOGS, METRICS),
    "dbforpostgresql:Server": (LOGS, METRICS),
    "cognitiveservices:Account": (LOGS, METRICS),
    "apimanagement:ApiManagementService": (LOGS, METRICS),
    "web:WebApp": (LOGS, METRICS),
    "web:AppServicePlan": (METRICS,),
    "network:VirtualNetwork": (LOGS, METRICS),
    "network:NetworkSecurityGroup": (LOGS,),
    "operationalinsights:Workspace": (LOGS, METRICS),
    "containerinstance:ContainerGroup": (LOGS,),
    "network:ApplicationGateway": (LOGS, METRICS),  # access, performance and WAF logs
    "network:AzureFirewall": (LOGS, METRICS),  # application, network and threat-intelligence rule hits
}
_DIAGNOSTIC_SETTING_PATH = "/providers/microsoft.insights/diagnosticsettings/"


def _diagnosed_resource_id(setting: PolicyResource) -> str:
    """The id of the resource a diagnostic setting watches (`resourceUri`, or the prefix of its own id)."""
    target = (
        prop(setting.props, "resourceUri") or str(resource_id(setting) or "").lower().split(_DIAGNOSTIC_SETTING_PATH)[0]
    )
    return str(target).lower()


def _signals_sent(setting: PolicyResource) -> set[str]:
    """The signals a setting has at least one enabled entry for (`logs`, `metrics`: their wire names)."""
    return {
        signal
        for signal in (LOGS, METRICS)
        if any(prop(entry, "enabled") for entry in items(prop(setting.props, signal)))
    }


def _has_destination(setting: PolicyResource) -> bool:
    return any(prop(setting.props, key) for key in ("workspaceId", "storageAccountId", "eventHubName"))


def _services_without_diagnostics(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    sent: dict[str, set[str]] = {}  # watched resource id -> the signals its settings send somewhere
    for setting in filter(_has_destination, of_type(resources, "monitor:DiagnosticSetting")):
        sent.setdefault(_diagnosed_resource_id(setting), set()).update(_signals_sent(setting))
    for service in of_type(resources, *DIAGNOSTIC_SIGNALS):
        kind = short_type(service.resource_type)
        signals = sent.get(str(resource_id(service) or "").lower())
        if signals is None:
            yield f"{kind} {service.name} has no diagnostic setting sending its logs/metrics anywhere", service.urn
            continue
        missing = [signal for signal in DIAGNOSTIC_SIGNALS[kind] if signal not in signals]
        if missing:
            yield (
                f"{kind} {service.name} has diagnostic settings, but none sends its {' or '.join(missing)}",
                service.urn,
            )


# ---------------------------------------------------------------------------------------------------
# Container Instances pull from the private registry as a trusted service.
# ---------------------------------------------------------------------------------------------------


def _identity_pulled_login_servers(resources: Sequence[PolicyResource]) -> set[str]:
    """Registry host names that container groups pull from with a managed identity."""
    return {
        str(prop(credential, "server")).lower()
        for group in of_type(resources, "containerinstance:ContainerGroup")
        for credential in items(prop(group.props, "imageRegistryCredentials"))
        if prop(credential, "identity")
    }


def _registries_refusing_identity_pulls(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    pulled = _identity_pulled_login_servers(resources)
    for registry in of_type(resources, "containerregistry:Registry"):
        login_server = str(prop(registry.props, "loginServer") or "").lower()
        name = str(azure_name(registry, "registryName") or "").lower()
        # In a preview the login server may be unknown; the registry's name is its first label.
        used = login_server in pulled or any(server.split(".")[0] == name for server in pulled if name)
        bypass = prop(registry.props, "networkRuleBypassOptions")
        if (
            used
            and same_text(prop(registry.props, "publicNetworkAccess"), "Disabled")
            and not same_text(bypass, "AzureServices")
        ):
            yield (
                f"container groups pull from registry {registry.name} with a managed identity, but its "
                f"networkRuleBypassOptions is {bypass!r}: the pull is refused",
                registry.urn,
            )


# ---------------------------------------------------------------------------------------------------
# Behind a gateway, the web app cannot be reached around it; in prod, every web app is behind one.
# ---------------------------------------------------------------------------------------------------


def _gateway_backends(gateway: PolicyResource) -> set[str]:
    return {
        str(prop(address, "fqdn")).lower()
        for pool in items(prop(gateway.props, "backendAddressPools"))
        for address in items(prop(pool, "backendAddresses"))
        if prop(address, "fqdn")
    }


def _site_host_names(site: PolicyResource) -> set[str]:
    """The site's default host name, or `<name>.azurewebsites.net` while a preview does not know it yet."""
    names = {prop(site.props, "defaultHostName"), f"{azure_name(site, 'name')}.azurewebsites.net"}
    return {str(name).lower() for name in names if name}


def _web_apps_reachable_around_a_gateway(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    gateways = of_type(resources, "network:ApplicationGateway")
    for site in of_type(resources, "web:WebApp"):
        fronting = [g.name for g in gateways if _gateway_backends(g) & _site_host_names(site)]
        access = prop(site.props, "publicNetworkAccess")
        if fronting and not same_text(access, "Disabled"):
            yield (
                f"web app {site.name} sits behind application gateway {fronting[0]}, but its publicNetworkAccess is "
                f"{access!r}: anyone can go around the WAF to the app's own host name",
                site.urn,
            )
        elif not fronting and environment_of(site.props, site.urn) in PRODUCTION_ENVIRONMENTS:
            yield f"prod web app {site.name} has no application gateway (WAF) in front of it", site.urn


# ---------------------------------------------------------------------------------------------------
# Every subnet a workload sends from routes 0.0.0.0/0 to the firewall (when there is one, and always in prod).
# ---------------------------------------------------------------------------------------------------

# Where each kind of workload names the subnet it sends its traffic from.
EGRESS_SUBNET_PATHS = {
    "web:WebApp": "virtualNetworkSubnetId",  # VNet integration (outbound)
    "apimanagement:ApiManagementService": "virtualNetworkConfiguration.subnetResourceId",
    "containerregistry:AgentPool": "virtualNetworkSubnetResourceId",
}


def _egress_subnet_ids(resources: Sequence[PolicyResource]) -> dict[str, PolicyResource]:
    """Subnet id (lower case) -> a workload that sends from it."""
    found: dict[str, PolicyResource] = {}
    for kind, path in EGRESS_SUBNET_PATHS.items():
        for workload in of_type(resources, kind):
            if prop(workload.props, path):
                found.setdefault(str(prop(workload.props, path)).lower(), workload)
    for group in of_type(resources, "containerinstance:ContainerGroup"):
        for subnet in items(prop(group.props, "subnetIds")):
            if prop(subnet, "id"):
                found.setdefault(str(prop(subnet, "id")).lower(), group)
    return found


def _default_routes(table: PolicyResource, resources: Sequence[PolicyResource]) -> list[Any]:
    """The table's 0.0.0.0/0 routes: listed in the table, or separate Route resources naming it."""
    table_name, table_id = azure_name(table, "routeTableName"), resource_id(table)
    routes = list(items(prop(table.props, "routes")))
    for route in of_type(resources, "network:Route"):
        by_name = same_text(prop(route.props, "routeTableName"), table_name) and same_text(
            prop(route.props, "resourceGroupName"), prop(table.props, "resourceGroupName")
        )
        if by_name or is_child_id(resource_id(route), table_id):
            routes.append(route.props)
    return [route for route in routes if prop(route, "addressPrefix") == "0.0.0.0/0"]


def _firewall_addresses(resources: Sequence[PolicyResource]) -> set[str]:
    return {
        str(prop(configuration, "privateIPAddress"))
        for firewall in of_type(resources, "network:AzureFirewall")
        for configuration in items(prop(firewall.props, "ipConfigurations"))
        if prop(configuration, "privateIPAddress")
    }


def _egress_not_through_firewall(resources: Sequence[PolicyResource]) -> Iterable[tuple[str, str]]:
    firewalls = of_type(resources, "network:AzureFirewall")
    addresses = _firewall_addresses(resources)
    tables = {str(resource_id(t)).lower(): t for t in of_type(resources, "network:RouteTable") if resource_id(t)}
    senders = _egress_subnet_ids(resources)
    for vnet in of_type(resources, "network:VirtualNetwork"):
        if not firewalls and environment_of(vnet.props, vnet.urn) not in PRODUCTION_ENVIRONMENTS:
            continue  # no firewall to route to, and not prod: default outbound access is allowed
        vnet_id = str(resource_id(vnet) or "").lower()
        for subnet in items(prop(vnet.props, "subnets")):
            subnet_id = f"{vnet_id}/subnets/{str(prop(subnet, 'name')).lower()}"
            sender = senders.get(subnet_id)
            if sender is None:
                continue
            where = f"subnet {prop(subnet, 'name')} (sent from by {short_type(sender.resource_type)} {sender.name})"
            table = tables.get(str(prop(subnet, "routeTable.id") or "").lower())
            if not firewalls:
                yield f"{where}: this prod stack has no Azure Firewall to route egress to", vnet.urn
            elif table is None:
                yield f"{where} has no route table, so it egresses around the firewall", vnet.urn
            elif not any(_to_firewall(route, addresses) for route in _default_routes(table, resources)):
                yield f"{where}: route table {table.name} sends no 0.0.0.0/0 to the firewall", vnet.urn


def _to_firewall(route: Any, addresses: set[str]) -> bool:
    """A 0.0.0.0/0 route to a virtual appliance at the firewall's address (unknown in a preview: any appliance)."""
    if not same_text(prop(route, "nextHopType"), "VirtualAppliance"):
        return False
    return not addresses or str(prop(route, "nextHopIpAddress")) in addresses


RULES = [
    stack_rule(
        "registry-trusted-services-for-identity-pulls",
        description="A registry with public access off that Container Instances pull from with a managed identity "
        "lets trusted Azure services through (Container Instances is one); otherwise the job cannot start.",
        remediation="set network_rule_bypass_options='AzureServices' on the containerregistry.Registry "
        "(ContainerRegistryArgs.trusted_services_pull in components/registry.py); public access stays off",
        check=_registries_refusing_identity_pulls,
    ),
    stack_rule(
        "private-endpoint-dns-zone-group",
        description="Every private endpoint has a private DNS zone group, so the service's public host name "
        "resolves to the private address inside the VNet (otherwise clients silently try the public endpoint).",
        remediation="create private endpoints with components/private_endpoint.py:private_endpoint(), which adds "
        "the network.PrivateDnsZoneGroup with the target's zones",
        check=_endpoints_without_dns,
    ),
    stack_rule(
        "no-privileged-roles-for-workloads",
        description="No workload (managed) identity is granted Owner, Contributor, User Access Administrator or "
        "Role Based Access Control Administrator; workloads get narrow data-plane roles on single resources.",
        remediation="grant the narrowest built-in role on the one resource that needs it with "
        "components/roles.py:assign_role (e.g. AcrPull, Key Vault Secrets User, Cognitive Services OpenAI User)",
        check=_privileged_workload_roles,
    ),
    stack_rule(
        "diagnostic-settings-on-every-service",
        description="Every service that supports diagnostic settings sends its logs and metrics to the "
        "stack's Log Analytics workspace, so incidents and access can be investigated.",
        remediation="call components/diagnostics.py:send_to_workspace(resource=<the service>, ...) next to the "
        "service (logs=False / metrics=False for types without one of the two)",
        check=_services_without_diagnostics,
    ),
    stack_rule(
        "webapp-private-behind-gateway",
        description="A web app that an Application Gateway fronts has public network access Disabled, so the WAF "
        "cannot be bypassed through the app's own host name; in prod every web app is behind one.",
        remediation="set aichat:ingress.mode: applicationGateway (components/app_service.py then sets "
        "public_network_access='Disabled' and adds the site's private endpoint; components/ingress.py adds the "
        "gateway)",
        check=_web_apps_reachable_around_a_gateway,
    ),
    stack_rule(
        "egress-subnets-routed-to-firewall",
        description="Where the stack has an Azure Firewall (always in prod), every subnet a workload sends from "
        "(App Service integration, API Management, container groups, registry agent pools) routes 0.0.0.0/0 to it.",
        remediation="set aichat:egress.mode: firewall (components/network.py gives each egressing subnet a route "
        "table, components/egress.py its 0.0.0.0/0 route to the firewall); a new egressing subnet role needs "
        "egresses=True in components/network.py",
        check=_egress_not_through_firewall,
    ),
]
