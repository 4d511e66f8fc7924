"""What a reviewer checks in a stack, read from the resources the program registers under mocks.

Used by the offline plan (`python -m tools.plan`) and the topology diagram (tools/diagram.py):
resources grouped by component, the settings that matter per resource (SKU, region, network
exposure, identity, protection), and which identity holds which role on what.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from components.roles import BuiltInRole
from policy.rules.base import prop
from policy.rules.stack_wide import PRIVILEGED_ROLES
from tools.offline import ProgramRun, Registration

# (label, where the value may sit in the wire properties); the first path that has a value wins.
SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("region", ("location",)),
    ("sku", ("sku.name", "properties.sku.name", "sku")),
    ("tier", ("sku.tier",)),
    ("capacity", ("sku.capacity",)),
    ("public access", ("publicNetworkAccess", "properties.publicNetworkAccess", "network.publicNetworkAccess")),
    (
        "firewall default",
        ("networkAcls.defaultAction", "properties.networkAcls.defaultAction", "networkRuleSet.defaultAction"),
    ),
    ("VNet mode", ("virtualNetworkType",)),
    ("WAF mode", ("policySettings.mode",)),
    ("HTTPS only", ("httpsOnly",)),
    ("min TLS", ("siteConfig.minTlsVersion",)),
    ("local auth off", ("properties.disableLocalAuth", "disableLocalAuth")),
    ("password auth", ("authConfig.passwordAuth",)),
    ("zone redundant", ("zoneRedundant", "zoneRedundancy")),
    ("HA", ("highAvailability.mode",)),
    ("identity", ("identity.type",)),
)


def short_id_name(resource_id: Any) -> str:
    """`.../subnets/snet-app` -> `snet-app` (the last segment of an ARM id)."""
    return str(resource_id).rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def role_name(role_id: str) -> str:
    """A role definition's GUID as Azure spells the role (the GUID itself for a role this repo does not know)."""
    guid = role_id.lower()
    if guid in PRIVILEGED_ROLES:
        return PRIVILEGED_ROLES[guid]
    known = {role.value: _readable(role.name) for role in BuiltInRole}
    return known.get(guid, guid)


def _readable(enum_name: str) -> str:
    """`COGNITIVE_SERVICES_OPENAI_USER` -> `Cognitive Services OpenAI User` (Azure's spelling of the role)."""
    return enum_name.replace("_", " ").title().replace("Openai", "OpenAI").replace("Acr Pull", "AcrPull")


class Inventory:
    """Lookups over one ProgramRun: resources by id, identities by principal, components by resource."""

    def __init__(self, run: ProgramRun):
        self.run = run
        self.by_urn = {r.urn: r for r in run.resources}

    @cached_property
    def by_id(self) -> dict[str, Registration]:
        return {str(r.id).lower(): r for r in self.run.resources if r.id}

    def find(self, resource_id: Any) -> Registration | None:
        return self.by_id.get(str(resource_id).lower()) if resource_id else None

    def of_type(self, short_type: str) -> list[Registration]:
        return self.run.of_type(f"azure-native:{short_type}")

    def top_component(self, registration: Registration) -> str:
        """The component directly under the stack that a resource belongs to ("(stack)" for none)."""
        current, component = registration, "(stack)"
        while current is not None:
            if not current.custom:
                component = current.name
            current = self.by_urn.get(current.parent)
        return component

    def grouped_by_component(self) -> dict[str, list[Registration]]:
        """Component name -> its resources, both sorted by name (registration order varies between runs)."""
        groups: dict[str, list[Registration]] = {}
        for registration in sorted(self.run.resources, key=lambda r: r.name):
            if registration.custom:
                groups.setdefault(self.top_component(registration), []).append(registration)
        return dict(sorted(groups.items()))

    @cached_property
    def principals(self) -> dict[str, str]:
        """principal id -> a readable identity name (user-assigned identities and system-assigned ones)."""
        names = {}
        for r in self.run.resources:
            if r.type == "azure-native:managedidentity:UserAssignedIdentity" and r.outputs.get("principalId"):
                names[str(r.outputs["principalId"]).lower()] = str(r.outputs.get("name") or r.name)
            system = prop(r.outputs, "identity.principalId")
            if system:
                names[str(system).lower()] = f"{r.name} (system-assigned)"
        return names

    def readable_role_grants(self) -> list[tuple[str, str, str]]:
        """(identity, role, scope) for every role the program grants, in the names a reviewer knows, sorted."""
        return sorted(
            (
                self.principals.get(grant.principal_id.lower(), grant.principal_id or "?"),
                role_name(grant.role_id),
                self.resource_name(grant.scope),
            )
            for grant in self.run.role_grants()
        )

    def resource_name(self, resource_id: str) -> str:
        """The logical name of the registered resource with this id; else the id's last segment."""
        resource = self.find(resource_id)
        return resource.name if resource else short_id_name(resource_id)

    def settings(self, registration: Registration) -> dict[str, str]:
        """The reviewer's settings for one resource, only those it has."""
        props = registration.inputs
        found = {label: _first(props, paths) for label, paths in SETTINGS}
        shown = {label: _text(value) for label, value in found.items() if value is not None}
        shown.update(self._links(registration))
        if registration.protect:
            shown["protected"] = "yes"
        return shown

    def _links(self, registration: Registration) -> dict[str, str]:
        """Where a resource sits in the network and what it points at."""
        props, links = registration.inputs, {}
        subnet = subnet_of(props)
        if subnet:
            links["subnet"] = subnet
        policy = self.find(prop(props, "firewallPolicy.id"))
        if policy is not None and prop(policy.inputs, "policySettings.mode"):  # a gateway's WAF
            links["WAF mode"] = str(prop(policy.inputs, "policySettings.mode"))
        for connection in props.get("privateLinkServiceConnections") or []:
            target = self.find(connection.get("privateLinkServiceId"))
            group = ", ".join(connection.get("groupIds") or [])
            links["private link to"] = (
                f"{target.name if target else short_id_name(connection.get('privateLinkServiceId'))} ({group})"
            )
        return links


# Where each kind of resource names the subnet it sits in (or sends its traffic from).
SUBNET_PATHS = (
    "subnet.id",  # private endpoint
    "virtualNetworkSubnetId",  # App Service outbound integration
    "virtualNetworkConfiguration.subnetResourceId",  # API Management injection
    "network.delegatedSubnetResourceId",  # PostgreSQL VNet injection
    "virtualNetworkSubnetResourceId",  # registry agent pool
)


# Lists whose first item names the subnet: container groups, an application gateway's instances, a firewall.
SUBNET_LISTS = (("subnetIds", "id"), ("gatewayIPConfigurations", "subnet.id"), ("ipConfigurations", "subnet.id"))


def subnet_of(props: Mapping[str, Any]) -> str | None:
    value = _first(props, SUBNET_PATHS)
    for key, path in SUBNET_LISTS:
        entries = props.get(key) or []
        if value is None and entries:
            value = prop(entries[0], path)
    return short_id_name(value) if value else None


def _first(props: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = prop(props, path)
        if value is not None and not isinstance(value, Mapping):
            return value
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
