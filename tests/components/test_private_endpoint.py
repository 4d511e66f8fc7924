"""Every PaaS service is reached through a private endpoint whose DNS zone group points at the right zones."""

from __future__ import annotations

import pytest

from components.private_endpoint import ALL_TARGETS

EXPECTED = {
    "azure-native:keyvault:Vault": ("vault", ["privatelink.vaultcore.azure.net"]),
    "azure-native:containerregistry:Registry": ("registry", ["privatelink.azurecr.io"]),
    "azure-native:dbforpostgresql:Server": ("postgresqlServer", ["privatelink.postgres.database.azure.com"]),
}


def endpoint_for(program, service_id: str):
    matches = [
        pe for pe in program.of_type("azure-native:network:PrivateEndpoint")
        if pe.inputs["privateLinkServiceConnections"][0]["privateLinkServiceId"] == service_id
    ]
    assert len(matches) == 1, f"expected one private endpoint for {service_id}, found {len(matches)}"
    return matches[0]


def zone_names_of_group(program, endpoint) -> list[str]:
    groups = [g for g in program.of_type("azure-native:network:PrivateDnsZoneGroup")
              if g.inputs["privateEndpointName"] == endpoint.outputs["name"]]
    assert len(groups) == 1, "Azure allows exactly one DNS zone group per private endpoint"
    zone_ids = [config["privateDnsZoneId"] for config in groups[0].inputs["privateDnsZoneConfigs"]]
    assert all(config.get("name") for config in groups[0].inputs["privateDnsZoneConfigs"])
    return [program.by_id(zone_id).inputs["privateZoneName"] for zone_id in zone_ids]


@pytest.mark.parametrize("service_type", sorted(EXPECTED))
def test_service_has_a_private_endpoint_with_the_right_group_id_and_zone(program, service_type):
    group_id, zones = EXPECTED[service_type]
    service = program.one(service_type)
    endpoint = endpoint_for(program, service.id)
    assert endpoint.inputs["privateLinkServiceConnections"][0]["groupIds"] == [group_id]
    assert zone_names_of_group(program, endpoint) == zones


def test_private_endpoints_live_in_the_private_endpoint_subnet(program):
    subnet_ids = {pe.inputs["subnet"]["id"] for pe in program.of_type("azure-native:network:PrivateEndpoint")}
    assert subnet_ids and all(s.endswith("/subnets/snet-private-endpoints") for s in subnet_ids)


def test_every_zone_is_global_and_linked_to_the_vnet_without_registration(program):
    vnet = program.one("azure-native:network:VirtualNetwork")
    zones = program.of_type("azure-native:privatedns:PrivateZone")
    links = program.of_type("azure-native:privatedns:VirtualNetworkLink")
    for zone in zones:
        assert zone.inputs["location"] == "global"
        zone_links = [link for link in links if link.inputs["privateZoneName"] == zone.outputs["name"]]
        assert len(zone_links) == 1, zone.outputs["name"]
        assert zone_links[0].inputs["virtualNetwork"]["id"] == vnet.id
        assert zone_links[0].inputs["registrationEnabled"] is False
    assert {z for t in ALL_TARGETS for z in t.dns_zones} <= {z.inputs["privateZoneName"] for z in zones}


def test_every_private_endpoint_has_a_dns_zone_group(program):
    endpoints = {pe.outputs["name"] for pe in program.of_type("azure-native:network:PrivateEndpoint")}
    grouped = {g.inputs["privateEndpointName"] for g in program.of_type("azure-native:network:PrivateDnsZoneGroup")}
    assert endpoints == grouped
