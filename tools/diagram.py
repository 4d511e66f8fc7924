"""A Mermaid topology diagram of one stack, drawn from the resources the program registers.

Shows the VNet and its subnets with what sits in each (App Service's outbound integration, API
Management, private endpoints, jobs, build agents), the services behind each private endpoint, and the
request path browser -> App Service -> API Management -> every OpenAI account (with the pool's
priority and weight). GitHub renders the text in a ```mermaid block.
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
    detail = " · ".join(v for k, v in settings.items() if k in ("sku", "region", "VNet mode"))
    azure_name = str(registration.outputs.get("name") or registration.name)
    return f"{node_id(registration)}{opening}{_label(caption, azure_name, detail)}{closing}"


def topology(inventory: Inventory) -> str:
    lines = ["flowchart LR", '  browser(["Browser"])']
    lines += _network(inventory)
    lines += _services(inventory)
    lines += _request_path(inventory)
    lines += _private_links(inventory)
    return "\n".join(lines) + "\n"


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
            yield f"    subgraph subnet_{re.sub(r'[^A-Za-z0-9_]', '_', name)}[{title}]"
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
        yield f'  browser ==>|"HTTPS"| {node_id(app)}'
        for gateway in gateways:
            yield f'  {node_id(app)} ==>|"Entra token"| {node_id(gateway)}'
    for gateway in gateways:
        for account, route in _pool_routes(inventory):
            yield f'  {node_id(gateway)} ==>|"{route}"| {node_id(account)}'


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
