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
        pe
        for pe in program.of_type("azure-native:network:PrivateEndpoint")
        if pe.inputs["privateLinkServiceConnections"][0]["privateLinkServiceId"] == service_id
    ]
    assert len(matches) == 1, f"expected one private endpoint for {service_id}, found {len(matches)}"
    return matches[0]


def zone_names_of_group(program, endpoint) -> list[str]:
    groups = [
        g
        for g in program.of_type("azure-native:network:PrivateDnsZoneGroup")
        if g.inputs["privateEndpointName"] == endpoint.outputs["name"]
    ]
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


# --- the helper and the zones component on their own -------------------------------------------------

from components.private_dns import PrivateDnsZones, PrivateDnsZonesArgs  # noqa: E402
from components.private_endpoint import OPENAI, private_endpoint  # noqa: E402

VNET_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet"
SUBNET_ID = VNET_ID + "/subnets/snet-private-endpoints"


def test_helper_puts_every_zone_of_a_target_into_one_named_group(declare):
    def build(context, config):
        zones = PrivateDnsZones("dns", PrivateDnsZonesArgs(context, "rg", VNET_ID, zone_names=OPENAI.dns_zones))
        private_endpoint(
            "ai",
            target=OPENAI,
            service_id="/subscriptions/s/x/accounts/ai",
            subnet_id=SUBNET_ID,
            resource_group_name="rg",
            location="swedencentral",
            dns_zone_ids=zones.zone_ids,
            tags={},
            parent=zones,
        )

    run = declare(build)
    group = run.one("azure-native:network:PrivateDnsZoneGroup")
    configs = group.inputs["privateDnsZoneConfigs"]
    assert [run.by_id(c["privateDnsZoneId"]).inputs["privateZoneName"] for c in configs] == list(OPENAI.dns_zones)
    assert len({c["name"] for c in configs}) == len(configs)
    # Both belong to the calling component (a child of the endpoint would inherit its many type aliases).
    assert (
        group.parent
        == run.one("azure-native:network:PrivateEndpoint").parent
        == run.one("aichat:network:PrivateDnsZones").urn
    )


def test_helper_refuses_an_endpoint_whose_zone_does_not_exist(declare):
    def build(context, config):
        private_endpoint(
            "ai",
            target=OPENAI,
            service_id="id",
            subnet_id=SUBNET_ID,
            resource_group_name="rg",
            location="swedencentral",
            dns_zone_ids={"privatelink.openai.azure.com": "zone-id"},
            tags={},
            parent=None,
        )

    with pytest.raises(Exception, match=r"no private DNS zone for privatelink\.cognitiveservices\.azure\.com"):
        declare(build)


def test_zones_component_declares_each_zone_once(declare):
    run = declare(
        lambda context, config: PrivateDnsZones(
            "dns", PrivateDnsZonesArgs(context, "rg", VNET_ID, zone_names=["privatelink.azurecr.io"] * 2)
        )
    )
    assert len(run.of_type("azure-native:privatedns:PrivateZone")) == 1
    assert len(run.of_type("azure-native:privatedns:VirtualNetworkLink")) == 1
