"""Key Vault: RBAC, soft delete + purge protection, private only; generated secrets readable by the app only."""

from __future__ import annotations

from components.roles import BuiltInRole


def test_vault_uses_rbac_soft_delete_and_purge_protection(program):
    properties = program.one("azure-native:keyvault:Vault").inputs["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["softDeleteRetentionInDays"] == program.config["aichat:keyVault"]["softDeleteRetentionDays"]


def test_vault_has_no_public_network_access(program):
    properties = program.one("azure-native:keyvault:Vault").inputs["properties"]
    assert properties["publicNetworkAccess"] == "Disabled"
    assert properties["networkAcls"]["defaultAction"] == "Deny"
    assert not properties.get("accessPolicies")


def test_vault_is_protected_in_prod_only(dev, prod):
    assert prod.one("azure-native:keyvault:Vault").protect is True
    assert dev.one("azure-native:keyvault:Vault").protect is False


def test_generated_secrets_come_from_random_and_are_stored_in_the_vault(program):
    vault = program.one("azure-native:keyvault:Vault")
    values = {r.name: r.outputs["hex"] for r in program.of_type("random:index/randomBytes:RandomBytes")}
    secrets = program.of_type("azure-native:keyvault:Secret")
    assert len(secrets) == len(values) >= 1
    for secret in secrets:
        assert secret.inputs["vaultName"] == vault.outputs["name"]
        assert secret.inputs["properties"]["value"] == values[f"keyvault-{secret.inputs['secretName']}-value"]


def test_app_identity_may_read_those_secrets_and_nothing_wider(program):
    secrets = program.of_type("azure-native:keyvault:Secret")
    app_identity = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    readers = [g for g in program.role_grants() if g.role_id == BuiltInRole.KEY_VAULT_SECRETS_USER.value]
    app_readers = [g for g in readers if g.principal_id == app_identity.outputs["principalId"]]
    assert sorted((g.scope, g.principal_id) for g in app_readers) == sorted(
        (secret.id, app_identity.outputs["principalId"]) for secret in secrets
    )
    # The only other reader is the ingress gateway, of its certificate's secret alone (test_ingress.py).
    vault = program.one("azure-native:keyvault:Vault")
    others = [g for g in readers if g not in app_readers]
    assert all(g.scope.startswith(f"{vault.id}/secrets/") for g in others)
    assert len(others) == (1 if program.stack_config.ingress.through_gateway else 0)


def test_trusted_services_pass_the_vault_firewall_only_for_the_ingress_gateway(dev, prod):
    # The gateway fetches its certificate as a trusted service (Microsoft's baseline); public access stays off.
    for run, bypass in ((dev, "None"), (prod, "AzureServices")):
        properties = run.one("azure-native:keyvault:Vault").inputs["properties"]
        assert properties["networkAcls"] == {"defaultAction": "Deny", "bypass": bypass}
        assert properties["publicNetworkAccess"] == "Disabled"


def test_each_generated_secret_gets_its_own_reader_grant(declare):
    from components.key_vault import KeyVault, KeyVaultArgs
    from components.private_endpoint import KEY_VAULT, PrivateAccess

    def build(context, config):
        KeyVault(
            "kv",
            KeyVaultArgs(
                context,
                config.key_vault,
                PrivateAccess("rg", "subnet-id", {zone: f"zone-{zone}" for zone in KEY_VAULT.dns_zones}, "workspace"),
                protect=False,
                generated_secrets={"first": 32, "second": 48},
                secret_reader_principal_id="reader",
            ),
        )

    run = declare(build)
    secrets = {s.inputs["secretName"]: s for s in run.of_type("azure-native:keyvault:Secret")}
    lengths = {p.name: p.inputs["length"] for p in run.of_type("random:index/randomBytes:RandomBytes")}
    assert set(secrets) == {"first", "second"}
    assert lengths == {"kv-first-value": 32, "kv-second-value": 48}
    grants = run.role_grants()
    assert sorted(g.scope for g in grants) == sorted(s.id for s in secrets.values())
    assert {g.principal_id for g in grants} == {"reader"}
