"""A Mermaid topology diagram of one stack, drawn from the resources the program registers.

Shows the VNet and its subnets with what sits in each (App Service's outbound integration, API
Management, private endpoints, jobs, build agents, the ingress gateway, the firewall), the services behind
each private endpoint, and the two paths docs/network.md explains:

- the way in: browser -> App Service (ingress public), or browser -> Application Gateway (WAF) -> the app's
  private endpoint -> App Service (ingress applicationGateway); then App Service -> API Management -> every
  OpenAI account (with the pool's priority and weight);
- the way out: each subnet that reaches the internet, through Azure Firewall where its route table sends
  0.0.0.0/0 there (egress firewall), or straight out by default outbound access (egress default).

GitHub renders the text in a ```mermaid block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from policy.rules.base import prop
from tools.inventory import Inventory, subnet_of
from tools.offline import Registration

# How each kind of resource is labelled and shaped in the picture: (caption, open bracket, close bracket).
SHAPES = {
    "web:WebApp": ("App Service (VNet-integrated)", "[", "]"),
    "apimanagement:ApiManagementService": ("API Management", "[", "]"),
    "network:PrivateEndpoint": ("private endpoint", "([", "])"),
    "containerinstance:ContainerGroup": ("Container job", "[", "]"),
    "containerregistry:AgentPool": ("Registry build agents", "[", "]"),
    "network:ApplicationGateway": ("Application Gateway", "[", "]"),
    "network:AzureFirewall": ("Azure Firewall", "[", "]"),
    "keyvault:Vault": ("Key Vault", "[(", ")]"),
    "containerregistry:Registry": ("Container Registry", "[(", ")]"),
    "dbforpostgresql:Server": ("PostgreSQL", "[(", ")]"),
    "cognitiveservices:Account": ("Azure OpenAI", "{{", "}}"),
}


def node_id(registration: Registration) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", registration.name)


def _label(*lines: str) -> str:
    # Mermaid labels are quoted; quotes inside are written as entities.
    return '"' + "<br/>".join(line.replace('"', "#quot;") for line in lines if line) + '"'


def node(inventory: Inventory, registration: Registration) -> str:
    caption, opening, closing = SHAPES[registration.type.removeprefix("azure-native:")]
    settings = inventory.settings(registration)
    shown = [v for k, v in settings.items() if k in ("sku", "tier", "region", "VNet mode", "WAF mode")]
    detail = " · ".join(dict.fromkeys(shown))  # once each (a gateway's SKU and tier are both WAF_v2)
    azure_name = str(registration.outputs.get("name") or registration.name)
    return f"{node_id(registration)}{opening}{_label(caption, azure_name, detail)}{closing}"


def topology(inventory: Inventory) -> str:
    lines = ["flowchart LR", '  browser(["Browser"])', '  internet(("Internet"))']
    lines += _network(inventory)
    lines += _services(inventory)
    lines += _request_path(inventory)
    lines += _private_links(inventory)
    lines += _egress_paths(inventory)
    return "\n".join(lines) + "\n"


def subnet_node_id(subnet_name: str) -> str:
    return f"subnet_{re.sub(r'[^A-Za-z0-9_]', '_', subnet_name)}"


def _placed(inventory: Inventory) -> list[Registration]:
    """Resources drawn inside a subnet (they name one)."""
    drawn = [
        r for r in inventory.run.resources if r.type.removeprefix("azure-native:") in SHAPES and subnet_of(r.inputs)
    ]
    return sorted(drawn, key=lambda r: r.name)


def _network(inventory: Inventory) -> Iterable[str]:
    placed = _placed(inventory)
    for vnet in inventory.of_type("network:VirtualNetwork"):
        space = ", ".join(prop(vnet.inputs, "addressSpace.addressPrefixes", []))
        vnet_name = vnet.outputs.get("name") or vnet.name
        # Subgraph titles stay on one line: Mermaid draws the first member over a second title line.
        yield f"  subgraph {node_id(vnet)}[{_label(f'VNet {vnet_name} · {space}')}]"
        for subnet in vnet.inputs.get("subnets") or []:
            name = subnet.get("name", "")
            title = _label(f"{name} · {subnet.get('addressPrefix', '')}")
            yield f"    subgraph {subnet_node_id(name)}[{title}]"
            for member in (r for r in placed if subnet_of(r.inputs) == name):
                yield f"      {node(inventory, member)}"
            yield "    end"
        yield "  end"


def _services(inventory: Inventory) -> Iterable[str]:
    """PaaS services outside the VNet (reached through private endpoints)."""
    for short_type in (
        "keyvault:Vault",
        "containerregistry:Registry",
        "dbforpostgresql:Server",
        "cognitiveservices:Account",
    ):
        for service in sorted(inventory.of_type(short_type), key=lambda r: r.name):
            if not subnet_of(service.inputs):
                yield f"  {node(inventory, service)}"


def _request_path(inventory: Inventory) -> Iterable[str]:
    apps = inventory.of_type("web:WebApp")
    gateways = inventory.of_type("apimanagement:ApiManagementService")
    for app in apps:
        yield from _way_in(inventory, app)
        for gateway in gateways:
            yield f'  {node_id(app)} ==>|"Entra token"| {node_id(gateway)}'
    for gateway in gateways:
        for account, route in _pool_routes(inventory):
            yield f'  {node_id(gateway)} ==>|"{route}"| {node_id(account)}'


def _way_in(inventory: Inventory, app: Registration) -> Iterable[str]:
    """browser -> the app, or browser -> the WAF in front of it -> the app's private endpoint (which links to it)."""
    host_names = {str(app.outputs.get("defaultHostName", "")).lower()}
    fronting = [
        gateway
        for gateway in inventory.of_type("network:ApplicationGateway")
        if host_names
        & {
            str(address.get("fqdn", "")).lower()
            for pool in gateway.inputs.get("backendAddressPools") or []
            for address in pool.get("backendAddresses") or []
        }
    ]
    if not fronting:
        yield f'  browser ==>|"HTTPS"| {node_id(app)}'
        return
    endpoints = [
        endpoint
        for endpoint in inventory.of_type("network:PrivateEndpoint")
        for connection in endpoint.inputs.get("privateLinkServiceConnections") or []
        if inventory.find(connection.get("privateLinkServiceId")) is app
    ]
    for gateway in fronting:
        listeners = [listener.get("hostName") for listener in gateway.inputs.get("httpListeners") or []]
        host = next((name for name in listeners if name), "")
        yield f'  browser ==>|"HTTPS {host}"| {node_id(gateway)}'
        for endpoint in endpoints:
            yield f'  {node_id(gateway)} ==>|"WAF passed"| {node_id(endpoint)}'


def _pool_routes(inventory: Inventory) -> list[tuple[Registration, str]]:
    """(OpenAI account, "priority p, weight w") for each member of the gateway's backend pool."""
    routes = []
    for pool in (b for b in inventory.of_type("apimanagement:Backend") if b.inputs.get("type") == "Pool"):
        for member in prop(pool.inputs, "pool.services", []):
            backend = inventory.find(member.get("id"))
            account = _account_behind(inventory, backend) if backend else None
            if account:
                routes.append((account, f"priority {member.get('priority', 1):g}, weight {member.get('weight', 1):g}"))
    return sorted(routes, key=lambda route: route[1])


def _account_behind(inventory: Inventory, backend: Registration) -> Registration | None:
    url = str(backend.inputs.get("url", "")).lower()
    for account in inventory.of_type("cognitiveservices:Account"):
        subdomain = prop(account.inputs, "properties.customSubDomainName") or account.outputs.get("name")
        if subdomain and f"//{str(subdomain).lower()}." in url:
            return account
    return None


def _private_links(inventory: Inventory) -> Iterable[str]:
    for endpoint in sorted(inventory.of_type("network:PrivateEndpoint"), key=lambda r: r.name):
        for connection in endpoint.inputs.get("privateLinkServiceConnections") or []:
            target = inventory.find(connection.get("privateLinkServiceId"))
            if target is not None and target.type.removeprefix("azure-native:") in SHAPES:
                group = ", ".join(connection.get("groupIds") or [])
                yield f'  {node_id(endpoint)} -.-|"{group}"| {node_id(target)}'


def _egress_paths(inventory: Inventory) -> Iterable[str]:
    """Each subnet's way to the internet: its 0.0.0.0/0 route to the firewall, or default outbound access."""
    firewalls = {
        str(configuration.get("privateIPAddress")): firewall
        for firewall in inventory.of_type("network:AzureFirewall")
        for configuration in firewall.outputs.get("ipConfigurations") or []
    }
    tables = {str(table.id).lower(): table for table in inventory.of_type("network:RouteTable")}
    routes = inventory.of_type("network:Route")
    for vnet in inventory.of_type("network:VirtualNetwork"):
        for subnet in vnet.inputs.get("subnets") or []:
            table = tables.get(str(prop(subnet, "routeTable.id") or "").lower())
            own = [r for r in routes if table and r.inputs.get("routeTableName") == table.inputs.get("routeTableName")]
            origin = subnet_node_id(subnet.get("name", ""))
            for route in sorted(own, key=lambda r: r.name):
                prefix, hop = route.inputs.get("addressPrefix"), route.inputs.get("nextHopType")
                firewall = firewalls.get(str(route.inputs.get("nextHopIpAddress")))
                if hop == "VirtualAppliance" and firewall is not None:
                    yield f'  {origin} -->|"{prefix}"| {node_id(firewall)}'
                elif hop == "Internet":
                    yield f'  {origin} -.->|"{prefix}"| internet'
            if (
                table is None
                and subnet.get("defaultOutboundAccess") is not False
                and not _has_public_ip(inventory, subnet.get("name"))
            ):
                yield f'  {origin} -.->|"default outbound access"| internet'
    for firewall in sorted(firewalls.values(), key=lambda r: r.name):
        yield f'  {node_id(firewall)} -->|"allowed host names and service tags"| internet'


def _has_public_ip(inventory: Inventory, subnet_name: str | None) -> bool:
    """The gateway and the firewall reach the internet through their own public IPs, not default outbound."""
    return any(
        subnet_of(r.inputs) == subnet_name
        for r in (*inventory.of_type("network:ApplicationGateway"), *inventory.of_type("network:AzureFirewall"))
    )
