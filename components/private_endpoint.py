"""The one shape every private PaaS service shares: a private endpoint plus its DNS zone group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.network as network

from components.diagnostics import send_to_workspace


@dataclass(frozen=True)
class PrivateLinkTarget:
    """How a kind of service is reached privately: its sub-resource (group id) and DNS zones."""

    group_id: str
    dns_zones: tuple[str, ...]


KEY_VAULT = PrivateLinkTarget("vault", ("privatelink.vaultcore.azure.net",))
CONTAINER_REGISTRY = PrivateLinkTarget("registry", ("privatelink.azurecr.io",))
POSTGRES = PrivateLinkTarget("postgresqlServer", ("privatelink.postgres.database.azure.com",))
# The OpenAI SDK calls <name>.openai.azure.com; the cognitiveservices zone covers the account's other host name.
OPENAI = PrivateLinkTarget("account", ("privatelink.openai.azure.com", "privatelink.cognitiveservices.azure.com"))

# A web app behind the ingress gateway: sub-resource `sites` (a slot would be `sites-<slot>`), zone
# privatelink.azurewebsites.net, whose group registers the app's and its SCM site's records
# (app-service/overview-private-endpoint.md, "DNS").
WEB_APP = PrivateLinkTarget("sites", ("privatelink.azurewebsites.net",))

ALL_TARGETS = (KEY_VAULT, CONTAINER_REGISTRY, POSTGRES, OPENAI, WEB_APP)
# Every zone a target needs, once each: the zones PrivateDnsZones creates and links to the VNet.
ALL_DNS_ZONES = tuple(dict.fromkeys(zone for target in ALL_TARGETS for zone in target.dns_zones))


@dataclass(frozen=True)
class PrivateConnection:
    """A private endpoint and the DNS zone group that makes its name resolve to it.

    A client inside the VNet can reach the service only once both exist: depend on `resources`."""

    endpoint: network.PrivateEndpoint
    dns_zone_group: network.PrivateDnsZoneGroup

    @property
    def resources(self) -> list[pulumi.Resource]:
        return [self.endpoint, self.dns_zone_group]


def private_endpoint(
    name: str,
    *,
    target: PrivateLinkTarget,
    service_id: pulumi.Input[str],
    subnet_id: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    location: str,
    dns_zone_ids: Mapping[str, pulumi.Input[str]],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    after: Sequence[pulumi.Resource] = (),
) -> PrivateConnection:
    """Create `<name>-pe` into `subnet_id` for `service_id`, and register its A records in the target's zones.

    Azure allows one DNS zone group per endpoint, so all of the target's zones go into that one group.
    `after`: what must be finished first (a service that is busy updating itself refuses new endpoints).
    """
    missing = [zone for zone in target.dns_zones if zone not in dns_zone_ids]
    if missing:
        raise ValueError(f"private endpoint {name}: no private DNS zone for {', '.join(missing)}")
    endpoint = network.PrivateEndpoint(
        f"{name}-pe",
        resource_group_name=resource_group_name,
        location=location,
        subnet=network.SubnetArgs(id=subnet_id),
        private_link_service_connections=[
            network.PrivateLinkServiceConnectionArgs(
                name=f"{name}-connection",
                private_link_service_id=service_id,
                group_ids=[target.group_id],
            )
        ],
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after)),
    )
    dns_zone_group = network.PrivateDnsZoneGroup(
        f"{name}-dns",
        resource_group_name=resource_group_name,
        private_endpoint_name=endpoint.name,
        private_dns_zone_group_name="default",
        private_dns_zone_configs=[
            network.PrivateDnsZoneConfigArgs(name=zone.replace(".", "-"), private_dns_zone_id=dns_zone_ids[zone])
            for zone in target.dns_zones
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return PrivateConnection(endpoint, dns_zone_group)


@dataclass(frozen=True)
class PrivateAccess:
    """Where a private PaaS service lives and how it is reached and watched: shared by every data service."""

    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # the private endpoint subnet
    dns_zone_ids: Mapping[str, pulumi.Input[str]]  # from PrivateDnsZones; must hold the target's zones
    workspace_id: pulumi.Input[str]  # Log Analytics, for the service's diagnostics


def connect_privately(
    name: str,
    *,
    target: PrivateLinkTarget,
    service: pulumi.CustomResource,
    access: PrivateAccess,
    location: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    after: Sequence[pulumi.Resource] = (),
) -> PrivateConnection:
    """A service's private endpoint (with its DNS zone group) and its diagnostic setting."""
    connection = private_endpoint(
        name,
        target=target,
        service_id=service.id,
        subnet_id=access.subnet_id,
        resource_group_name=access.resource_group_name,
        location=location,
        dns_zone_ids=access.dns_zone_ids,
        tags=tags,
        parent=parent,
        after=after,
    )
    send_to_workspace(name, resource=service, workspace_id=access.workspace_id, parent=parent)
    return connection
