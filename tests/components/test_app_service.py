"""App Service: container from the private registry by managed identity, VNet-integrated, locked down."""

from __future__ import annotations

import pytest


def site(program):
    return program.one("azure-native:web:WebApp")


def app_settings(program) -> dict[str, str]:
    return {s["name"]: s["value"] for s in site(program).inputs["siteConfig"]["appSettings"]}


def test_runs_the_configured_image_from_the_stack_registry(program):
    registry = program.one("azure-native:containerregistry:Registry")
    image = program.config["aichat:appService"]["image"]
    assert site(program).inputs["siteConfig"]["linuxFxVersion"] == f"DOCKER|{registry.outputs['loginServer']}/{image}"


def test_pulls_with_the_user_assigned_identity_not_a_password(program):
    identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    inputs = site(program).inputs
    assert inputs["identity"]["type"] == "UserAssigned"
    assert inputs["siteConfig"]["acrUseManagedIdentityCreds"] is True
    assert inputs["siteConfig"]["acrUserManagedIdentityID"] == identity.outputs["clientId"]
    assert not {"DOCKER_REGISTRY_SERVER_PASSWORD", "DOCKER_REGISTRY_SERVER_USERNAME"} & set(app_settings(program))


def test_all_outbound_traffic_and_image_pulls_go_through_the_vnet(program):
    inputs = site(program).inputs
    assert inputs["virtualNetworkSubnetId"].endswith("/subnets/snet-app")
    assert inputs["outboundVnetRouting"]["applicationTraffic"] is True
    assert inputs["outboundVnetRouting"]["imagePullTraffic"] is True


def test_https_only_modern_tls_and_no_ftp(program):
    inputs = site(program).inputs
    assert inputs["httpsOnly"] is True
    assert inputs["siteConfig"]["minTlsVersion"] == "1.2"
    assert inputs["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert inputs["siteConfig"]["ftpsState"] == "Disabled"


@pytest.mark.parametrize("policy_type", ["azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"])
def test_basic_publishing_credentials_are_off(program, policy_type):
    policy = program.one(policy_type)
    assert policy.inputs["allow"] is False
    assert policy.inputs["name"] == site(program).outputs["name"]


def test_health_check_and_always_on(program):
    config = site(program).inputs["siteConfig"]
    assert config["healthCheckPath"] == program.config["aichat:appService"]["healthCheckPath"]
    assert config["alwaysOn"] is True


def test_secrets_are_key_vault_references_never_values(program):
    settings = app_settings(program)
    secret_values = [p.outputs["hex"] for p in program.of_type("random:index/randomBytes:RandomBytes")]
    assert secret_values
    assert not any(value in str(setting) for value in secret_values for setting in settings.values())
    vault_uri = program.one("azure-native:keyvault:Vault").outputs["properties"]["vaultUri"]
    for setting, secret in (
        ("WEBSITE_AUTH_ENCRYPTION_KEY", "auth-encryption-key"),
        ("WEBSITE_AUTH_SIGNING_KEY", "auth-signing-key"),
    ):
        assert settings[setting] == f"@Microsoft.KeyVault(SecretUri={vault_uri}secrets/{secret})"
    identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    assert site(program).inputs["keyVaultReferenceIdentity"] == identity.id


def test_app_is_told_how_to_reach_postgres_keylessly(program):
    settings = app_settings(program)
    identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    assert settings["POSTGRES_HOST"] == program.outputs["postgresHost"]
    assert settings["POSTGRES_USER"] == identity.outputs["name"]
    assert settings["AZURE_CLIENT_ID"] == identity.outputs["clientId"]
    assert not any("password" in key.lower() for key in settings)


def test_plan_is_linux_with_configured_sku_and_instances(program):
    plan = program.one("azure-native:web:AppServicePlan").inputs
    config = program.config["aichat:appService"]
    assert plan["reserved"] is True and plan["kind"] == "linux"
    assert plan["sku"]["name"] == config["skuName"] and plan["sku"]["capacity"] == config["instanceCount"]
    assert plan["zoneRedundant"] == config["zoneRedundant"]


def test_every_request_must_sign_in_with_entra_and_no_client_secret_exists(program):
    auth = program.one("azure-native:web:WebAppAuthSettingsV2").inputs
    identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    assert auth["name"] == site(program).outputs["name"]
    assert auth["platform"]["enabled"] is True
    assert auth["globalValidation"]["requireAuthentication"] is True
    registration = auth["identityProviders"]["azureActiveDirectory"]["registration"]
    assert registration["clientId"] == program.config["aichat:appService"]["signInClientId"]
    # The "secret" setting names the managed identity whose token is the client assertion, not a secret.
    setting = registration["clientSecretSettingName"]
    assert app_settings(program)[setting] == identity.outputs["clientId"]


def test_app_trusts_identity_headers_only_because_the_platform_sets_them(program):
    assert app_settings(program)["AUTH_MODE"] == "app_service"
    assert program.one("azure-native:web:WebAppAuthSettingsV2").inputs["globalValidation"]["requireAuthentication"]


def test_sign_in_client_id_must_be_a_guid(stack_values):
    from components.config import ConfigError, parse_stack_config, project_keys

    values = project_keys(stack_values("dev"))
    values["appService"]["signInClientId"] = "my-app"
    with pytest.raises(
        ConfigError, match=r"aichat:appService.signInClientId: 'my-app' is not valid; must be the client id"
    ):
        parse_stack_config(values, "dev")


def test_the_app_starts_only_once_its_key_vault_references_can_resolve(program):
    """A reference that fails at start is used as its literal text for up to a day."""
    depends_on = set(site(program).depends_on)
    secrets = program.of_type("azure-native:keyvault:Secret")
    secret_ids = {s.id for s in secrets}
    grants = [
        r for r in program.of_type("azure-native:authorization:RoleAssignment") if r.inputs["scope"] in secret_ids
    ]
    vault_endpoint = program.one("azure-native:network:PrivateEndpoint", "keyvault-vault-pe")
    vault_dns = program.one("azure-native:network:PrivateDnsZoneGroup", "keyvault-vault-dns")
    assert secrets and len(grants) == len(secrets)
    assert {r.urn for r in [*secrets, *grants, vault_endpoint, vault_dns]} <= depends_on
