"""Bad stack config fails before any resource exists, with a message naming key, value and what is allowed."""

from __future__ import annotations

import inspect

import pytest
import yaml
from pydantic import ValidationError

from components import config as config_module
from components.config import ConfigError, parse_stack_config
from tests.components.config_errors import error_for
from tools.offline import ProgramError


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stack_files_are_valid(values, stack):
    config = parse_stack_config(values(stack), stack)
    assert config.environment == stack


def test_overlapping_subnets_are_rejected(values):
    values = values("dev")
    values["network"]["subnets"]["jobs"] = "10.40.1.128/27"  # inside privateEndpoints 10.40.1.0/24
    message = error_for(values)
    assert "aichat:network.subnets.jobs" in message and "10.40.1.128/27" in message and "overlaps" in message
    assert "aichat:network.subnets.privateEndpoints" in message


def test_subnet_outside_the_address_space_is_rejected(values):
    values = values("dev")
    values["network"]["subnets"]["jobs"] = "10.99.0.0/27"
    message = error_for(values)
    assert "aichat:network.subnets.jobs: 10.99.0.0/27 is outside the address space 10.40.0.0/16" in message


def test_subnet_too_small_for_its_service_is_rejected(values):
    values = values("dev")
    values["network"]["subnets"]["appService"] = "10.40.0.0/28"
    message = error_for(values)
    assert (
        "aichat:network.subnets.appService" in message and "too small (/28)" in message and "/26 or larger" in message
    )


def test_a_cidr_that_is_not_a_cidr_is_rejected(values):
    values = values("dev")
    values["network"]["addressSpace"] = "10.40.0.1/16"  # host bits set
    assert "aichat:network.addressSpace: '10.40.0.1/16' is not an IPv4 CIDR block" in error_for(values)


def test_a_public_address_space_is_rejected(values):
    values = values("dev")
    values["network"]["addressSpace"] = "8.8.0.0/16"
    assert "is not a private range" in error_for(values)


def test_unknown_sku_is_rejected_with_the_allowed_list(values):
    values = values("dev")
    values["appService"]["skuName"] = "F1"
    message = error_for(values)
    assert "aichat:appService.skuName: 'F1' is not allowed" in message and "P0v3" in message


def test_sku_that_does_not_match_its_tier_is_rejected(values):
    values = values("dev")
    values["postgres"]["skuName"] = "Standard_D2ds_v5"  # a GeneralPurpose SKU on the Burstable tier
    message = error_for(values)
    assert "aichat:postgres.skuName" in message and "not a Burstable SKU" in message


@pytest.mark.parametrize("capacity", [0, -1])
def test_zero_or_negative_capacity_is_rejected(values, capacity):
    values = values("dev")
    values["appService"]["instanceCount"] = capacity
    message = error_for(values)
    assert f"aichat:appService.instanceCount: {capacity} is out of range; allowed: 1 to 30" in message


def test_storage_size_azure_does_not_offer_is_rejected(values):
    values = values("dev")
    values["postgres"]["storageSizeGb"] = 100
    assert "aichat:postgres.storageSizeGb: 100 is not a size Azure offers" in error_for(values)


@pytest.mark.parametrize(
    "path, expected",
    [
        (("location",), "aichat:location is required but not set"),
        (("network",), "aichat:network is required but not set"),
        (("postgres", "tier"), "aichat:postgres.tier is required but not set"),
        (("appService", "image"), "aichat:appService.image is required but not set"),
    ],
)
def test_missing_required_key_is_named(values, path, expected):
    values = values("dev")
    holder = values
    for part in path[:-1]:
        holder = holder[part]
    del holder[path[-1]]
    assert expected in error_for(values)


def test_misspelt_key_is_reported_not_ignored(values):
    values = values("dev")
    values["postgres"]["storageSizeGB"] = 64
    message = error_for(values)
    assert "aichat:postgres: unknown key(s) storageSizeGB" in message and "storageSizeGb" in message


def test_wrong_type_is_rejected(values):
    values = values("dev")
    values["postgres"]["geoRedundantBackup"] = "sometimes"
    assert "aichat:postgres.geoRedundantBackup: expected true or false, got 'sometimes'" in error_for(values)


def test_prod_must_protect_stateful_resources(values):
    values = values("prod")
    values["protectStatefulResources"] = False
    assert "aichat:protectStatefulResources: false is not allowed for a prod stack" in error_for(values, "prod")


def test_prod_may_not_open_the_registry_to_build_agents(values):
    values = values("prod")
    values["registry"]["buildAgentIpRanges"] = ["203.0.113.0/24"]
    assert "aichat:registry.buildAgentIpRanges" in error_for(values, "prod")


def test_high_availability_is_not_offered_on_burstable(values):
    values = values("dev")
    values["postgres"]["highAvailability"] = True
    assert "aichat:postgres.highAvailability: true is not available on the Burstable tier" in error_for(values)


def test_image_with_a_registry_host_is_rejected(values):
    values = values("dev")
    values["appService"]["image"] = "docker.io/library/nginx:latest"
    message = error_for(values)
    assert "aichat:appService.image" in message


def test_invalid_config_fails_before_any_resource_is_registered(stack_values, run_with, values):
    values = stack_values("dev")
    values["aichat:network"]["subnets"]["jobs"] = "10.40.0.0/27"  # overlaps appService
    with pytest.raises(ProgramError) as raised:
        run_with("dev", values)
    assert isinstance(raised.value.__cause__, ConfigError)
    assert "aichat:network.subnets.jobs" in str(raised.value)
    assert raised.value.resources == []


def test_unknown_top_level_key_in_the_stack_file_is_reported(stack_values, run_with, values):
    values = stack_values("dev")
    values["aichat:netwrok"] = {"addressSpace": "10.0.0.0/16"}
    with pytest.raises(ProgramError) as raised:
        run_with("dev", values)
    assert "unknown key(s) netwrok" in str(raised.value)


def test_every_bad_value_of_one_object_is_reported_at_once(values):
    values = values("dev")
    values["postgres"].update(tier="Huge", backupRetentionDays=90, geoRedundantBackup="sometimes")
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(values, "dev")
    assert raised.value.problems == [
        "aichat:postgres.tier: 'Huge' is not allowed; allowed values: Burstable, GeneralPurpose, MemoryOptimized",
        "aichat:postgres.backupRetentionDays: 90 is out of range; allowed: 7 to 35",
        "aichat:postgres.geoRedundantBackup: expected true or false, got 'sometimes'",
    ]


def test_an_admin_in_a_list_is_named_by_its_index(values):
    values = values("dev")
    values["postgres"]["extraAdmins"] = [{"objectId": "dba-group", "principalName": "DBAs"}]
    assert "aichat:postgres.extraAdmins[0].objectId: 'dba-group' is not valid; must be the Entra object id" in (
        error_for(values)
    )


def test_the_stack_file_uses_the_camel_case_keys(values):
    values = values("dev")
    values["postgres"]["storage_size_gb"] = values["postgres"].pop("storageSizeGb")
    assert "aichat:postgres: unknown key(s) storage_size_gb" in error_for(values)


def test_the_parsed_config_is_immutable(values):
    config = parse_stack_config(values("dev"), "dev")
    with pytest.raises(ValidationError):
        config.postgres.sku_name = "Standard_B2s"


def test_a_top_level_key_the_stack_file_adds_is_reported_even_when_it_is_no_slip_of_a_known_one(
    stack_values, run_with, tmp_path, monkeypatch, values
):
    """Keys are found in the stack file itself (Pulumi has no public call that lists config keys)."""
    values = stack_values("dev")
    values["aichat:storage"] = {"sizeGb": 64}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": values}))
    monkeypatch.setattr(config_module, "PROJECT_ROOT", tmp_path)
    with pytest.raises(ProgramError) as raised:
        run_with("dev", values)
    assert "aichat: unknown key(s) storage; known keys: appService, egress, environment" in str(raised.value)


def test_the_loader_reads_config_through_the_public_pulumi_api_only():
    assert "pulumi.runtime" not in inspect.getsource(config_module)
