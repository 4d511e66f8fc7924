"""Container Registry: Premium, no admin user, no anonymous pull, private; AcrPull for the app on it alone."""

from __future__ import annotations

from components.roles import BuiltInRole


def test_registry_is_premium_with_admin_and_anonymous_pull_off(program):
    registry = program.one("azure-native:containerregistry:Registry").inputs
    assert registry["sku"]["name"] == "Premium"
    assert registry["adminUserEnabled"] is False
    assert registry["anonymousPullEnabled"] is False


def test_registry_public_network_access_is_off_by_default(program):
    registry = program.one("azure-native:containerregistry:Registry").inputs
    assert registry["publicNetworkAccess"] == "Disabled"
    assert registry["networkRuleSet"]["defaultAction"] == "Deny"
    assert registry["networkRuleSet"]["ipRules"] == []


def test_dev_build_agent_switch_allows_only_the_listed_ranges(stack_values, run_with):
    values = stack_values("dev")
    values["aichat:registry"]["buildAgentIpRanges"] = ["203.0.113.0/28"]
    registry = run_with("dev", values).one("azure-native:containerregistry:Registry").inputs
    assert registry["publicNetworkAccess"] == "Enabled"
    assert registry["networkRuleSet"]["defaultAction"] == "Deny"
    assert registry["networkRuleSet"]["ipRules"] == [{"action": "Allow", "iPAddressOrRange": "203.0.113.0/28"}]


def test_registry_is_protected_in_prod_only(dev, prod):
    assert prod.one("azure-native:containerregistry:Registry").protect is True
    assert dev.one("azure-native:containerregistry:Registry").protect is False


def test_app_identity_has_acr_pull_scoped_to_the_registry(program):
    registry = program.one("azure-native:containerregistry:Registry")
    app_identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    pulls = [
        g.scope
        for g in program.role_grants()
        if g.role_id == BuiltInRole.ACR_PULL.value and g.principal_id == app_identity.outputs["principalId"]
    ]
    assert pulls == [registry.id]


def test_every_puller_gets_acr_pull_on_the_registry_and_nothing_else(declare):
    from components.private_endpoint import CONTAINER_REGISTRY, PrivateAccess
    from components.registry import ContainerRegistry, ContainerRegistryArgs

    def build(context, config):
        ContainerRegistry(
            "cr",
            ContainerRegistryArgs(
                context,
                config.registry,
                PrivateAccess(
                    "rg", "subnet-id", {zone: "zone-id" for zone in CONTAINER_REGISTRY.dns_zones}, "workspace"
                ),
                protect=False,
                pullers={"web": "principal-web", "job": "principal-job"},
            ),
        )

    run = declare(build)
    registry = run.one("azure-native:containerregistry:Registry")
    grants = run.role_grants()
    assert sorted(g.principal_id for g in grants) == ["principal-job", "principal-web"]
    assert {g.scope for g in grants} == {registry.id}
    assert {g.role_id for g in grants} == {BuiltInRole.ACR_PULL.value}


def test_container_instances_may_pull_as_a_trusted_service_when_the_ingestion_job_runs(program):
    # The job's container group pulls with its identity from outside the private endpoint.
    assert program.stack_config.ingestion.enabled
    assert program.one("azure-native:containerregistry:Registry").inputs["networkRuleBypassOptions"] == "AzureServices"


def test_no_trusted_service_exception_without_a_job(stack_values, run_with):
    values = stack_values("dev")
    values["aichat:ingestion"]["enabled"] = False
    registry = run_with("dev", values).one("azure-native:containerregistry:Registry").inputs
    assert registry["networkRuleBypassOptions"] == "None"


def test_images_cannot_be_exported_from_the_registry(program):
    registry = program.one("azure-native:containerregistry:Registry").inputs
    assert registry["policies"]["exportPolicy"]["status"] == "disabled"


def test_the_build_agent_switch_turns_export_back_on_which_public_access_needs(stack_values, run_with):
    # Azure refuses public network access while the export policy is disabled.
    values = stack_values("dev")
    values["aichat:registry"]["buildAgentIpRanges"] = ["203.0.113.0/28"]
    registry = run_with("dev", values).one("azure-native:containerregistry:Registry").inputs
    assert (registry["publicNetworkAccess"], registry["policies"]["exportPolicy"]["status"]) == ("Enabled", "enabled")
