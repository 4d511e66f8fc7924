"""Only azure-native's API-versioned type aliases are skipped; aliases for real renames stay."""

from __future__ import annotations

import pulumi

from components.aliases import is_api_versioned_alias, without_api_versioned_aliases


def transform(aliases):
    args = pulumi.ResourceTransformationArgs(
        resource=None,
        type_="azure-native:privatedns:PrivateZone",
        name="zone",
        props={},
        opts=pulumi.ResourceOptions(aliases=aliases, protect=True),
    )
    return without_api_versioned_aliases(args)


def test_versioned_aliases_are_dropped_and_renames_kept():
    rename = pulumi.Alias(type_="azure-native:network:PrivateZone")
    result = transform(
        [
            pulumi.Alias(type_="azure-native:network/v20200601:PrivateZone"),
            pulumi.Alias(type_="azure-native:privatedns/v20240601preview:PrivateZone"),
            rename,
        ]
    )
    assert result.opts.aliases == [rename]
    assert result.opts.protect is True  # every other option survives


def test_resources_without_versioned_aliases_are_left_alone():
    assert transform([pulumi.Alias(type_="azure-native:network:PrivateZone")]) is None
    assert transform(None) is None


def test_only_typed_versioned_aliases_count():
    assert is_api_versioned_alias(pulumi.Alias(type_="azure-native:web/v20220301:WebApp"))
    assert not is_api_versioned_alias(pulumi.Alias(type_="azure-native:web:WebApp"))
    assert not is_api_versioned_alias(pulumi.Alias(name="old-name"))
    assert not is_api_versioned_alias("urn:pulumi:dev::aichat::azure-native:web/v20220301:WebApp::site")


def test_the_program_registers_resources_without_versioned_aliases_but_with_renames(program):
    zone = program.of_type("azure-native:privatedns:PrivateZone")[0]
    assert "azure-native:network:PrivateZone" in zone.alias_types  # a real rename is still honoured
    versioned = [(r.name, t) for r in program.resources for t in r.alias_types if "/v" in t]
    assert versioned == []


def test_a_moved_resource_names_its_old_top_level_parent(declare):
    from components.aliases import moved_from

    seen = []

    def build(context, config):
        renamed = moved_from("aichat:network:Network", "network", name="network-rg")
        renamed.parent.apply(lambda urn: seen.append((renamed.name, urn)))
        moved_from("aichat:observability:Observability", "observability").parent.apply(
            lambda urn: seen.append(("(unchanged)", urn))
        )

    declare(build)
    assert sorted(seen) == [
        ("(unchanged)", "urn:pulumi:dev::aichat::aichat:observability:Observability::observability"),
        ("network-rg", "urn:pulumi:dev::aichat::aichat:network:Network::network"),
    ]
