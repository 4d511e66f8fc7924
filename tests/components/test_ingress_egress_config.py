"""Bad `aichat:ingress` / `aichat:egress` config fails with a message naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from components.config import parse_stack_config
from tests.components.config_errors import error_for
from tools.offline import ProgramError


def behind_gateway_and_firewall(config: dict) -> dict:
    """dev's config switched to prod's modes, with the subnets they need (each test then breaks one thing)."""
    config["network"]["subnets"].update(applicationGateway="10.40.5.0/24", firewall="10.40.6.0/26")
    config["ingress"] = {
        "mode": "applicationGateway",
        "applicationGateway": {
            "hostName": "chat.example.com",
            "certificateSecretId": "https://kv-aichat-dev-123abc.vault.azure.net/secrets/chat-tls",
        },
    }
    config["egress"] = {"mode": "firewall", "firewall": {"sku": "Standard"}}
    return config


def test_dev_may_use_the_gateway_and_the_firewall_too(values):
    config = parse_stack_config(behind_gateway_and_firewall(values()), "dev")
    assert config.ingress.through_gateway and config.egress.through_firewall
    assert config.ingress.application_gateway.waf_mode == "Prevention"  # the default


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("ingress", {"mode": "public"}, "aichat:ingress.mode: 'public' is not allowed for a prod stack"),
        ("egress", {"mode": "default"}, "aichat:egress.mode: 'default' is not allowed for a prod stack"),
    ],
)
def test_prod_must_use_the_gateway_and_the_firewall(values, key, value, says):
    config = values("prod")
    config[key] = value
    assert says in error_for(config, "prod")


def test_the_modes_are_required_so_every_stack_file_states_them(values):
    config = values()
    del config["ingress"]
    assert "aichat:ingress is required but not set" in error_for(config)


def test_an_unknown_mode_is_named_with_the_allowed_ones(values):
    config = values()
    config["egress"] = {"mode": "nat"}
    assert "aichat:egress.mode: 'nat' is not allowed; allowed values: default, firewall" in error_for(config)


def test_prod_refuses_a_waf_that_only_detects(values):
    config = values("prod")
    config["ingress"]["applicationGateway"]["wafMode"] = "Detection"
    assert "aichat:ingress.applicationGateway.wafMode: 'Detection' is not allowed for a prod stack" in error_for(
        config, "prod"
    )


def test_dev_may_tune_the_waf_in_detection(values):
    config = behind_gateway_and_firewall(values())
    config["ingress"]["applicationGateway"]["wafMode"] = "Detection"
    assert parse_stack_config(config, "dev").ingress.application_gateway.waf_mode == "Detection"


@pytest.mark.parametrize("zones, minimum", [([], 2), (["1"], 2), (["1", "2"], 1)])
def test_prod_needs_the_gateway_across_zones_with_two_instances(values, zones, minimum):
    config = values("prod")
    config["ingress"]["applicationGateway"].update(zones=zones, minCapacity=minimum)
    assert "aichat:ingress.applicationGateway.zones" in error_for(config, "prod")


def test_prod_needs_the_firewall_across_zones(values):
    config = values("prod")
    config["egress"]["firewall"]["zones"] = ["1"]
    assert "aichat:egress.firewall.zones: ['1'] for a prod stack" in error_for(config, "prod")


def test_the_gateway_mode_needs_its_settings(values):
    config = behind_gateway_and_firewall(values())
    del config["ingress"]["applicationGateway"]
    assert "aichat:ingress.applicationGateway: not set, but mode is applicationGateway" in error_for(config)


def test_the_firewall_mode_needs_its_settings(values):
    config = behind_gateway_and_firewall(values())
    del config["egress"]["firewall"]
    assert "aichat:egress.firewall: not set, but mode is firewall" in error_for(config)


@pytest.mark.parametrize(
    "subnet, says", [("applicationGateway", "mode is applicationGateway"), ("firewall", "mode is firewall")]
)
def test_each_mode_needs_its_subnet(values, subnet, says):
    config = behind_gateway_and_firewall(values())
    del config["network"]["subnets"][subnet]
    message = error_for(config)
    assert f"aichat:network.subnets.{subnet}: not set, but aichat:" in message and says in message


def test_the_gateway_subnet_must_hold_its_largest_scale(values):
    config = behind_gateway_and_firewall(values())
    config["network"]["subnets"]["applicationGateway"] = "10.40.5.0/27"  # 27 usable addresses
    config["ingress"]["applicationGateway"]["maxCapacity"] = 40
    message = error_for(config)
    assert "aichat:network.subnets.applicationGateway: 10.40.5.0/27 has 27 usable addresses" in message
    assert "maxCapacity (40)" in message


def test_the_firewall_subnet_must_be_a_26(values):
    config = behind_gateway_and_firewall(values())
    config["network"]["subnets"]["firewall"] = "10.40.6.0/27"
    assert "aichat:network.subnets.firewall: 10.40.6.0/27 is too small (/27)" in error_for(config)


def test_the_basic_firewall_is_refused_with_the_reason(values):
    config = behind_gateway_and_firewall(values())
    config["egress"]["firewall"]["sku"] = "Basic"
    message = error_for(config)
    assert "aichat:egress.firewall.sku: 'Basic' is not offered here (Basic needs a management subnet" in message


@pytest.mark.parametrize(
    "secret_id",
    [
        "https://kv-aichat-dev-123abc.vault.azure.net/secrets/chat-tls/0123456789abcdef0123456789abcdef",
        "https://kv-aichat-dev-123abc.vault.azure.net/certificates/chat-tls",
        "kv-aichat-dev-123abc/chat-tls",
    ],
)
def test_the_certificate_must_be_a_versionless_key_vault_secret_id(values, secret_id):
    config = behind_gateway_and_firewall(values())
    config["ingress"]["applicationGateway"]["certificateSecretId"] = secret_id
    assert "aichat:ingress.applicationGateway.certificateSecretId" in error_for(config)


def test_the_host_name_must_be_a_dns_name(values):
    config = behind_gateway_and_firewall(values())
    config["ingress"]["applicationGateway"]["hostName"] = "https://chat.example.com/"
    assert "aichat:ingress.applicationGateway.hostName: 'https://chat.example.com/' is not a host name" in error_for(
        config
    )


def test_the_gateways_zones_need_a_region_with_zones(values):
    from components.catalog import default_catalog

    catalog = default_catalog()
    without_zones = next(name for name in catalog.regions if not catalog.has_zones(name))
    config = behind_gateway_and_firewall(values())
    config["location"] = without_zones
    config["ingress"]["applicationGateway"]["zones"] = ["1", "2"]
    assert "aichat:ingress.applicationGateway.zones" in error_for(config)


def test_prods_mode_errors_stop_the_program_before_any_resource(stack_values, run_with):
    values = stack_values("prod")
    values["aichat:ingress"] = {"mode": "public"}
    with pytest.raises(ProgramError) as raised:
        run_with("prod", values)
    assert "aichat:ingress.mode" in str(raised.value) and raised.value.resources == []
