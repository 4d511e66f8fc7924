"""Key Vault: RBAC only, soft delete and purge protection, reachable only through its private endpoint.

Secrets the system needs are generated here (pulumi-random) and never leave the vault in clear:
the app reads them through Key Vault references with its managed identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.keyvault as keyvault
import pulumi_random as random

from components.config import KeyVaultConfig
from components.context import StackContext
from components.private_endpoint import KEY_VAULT, PrivateAccess, connect_privately
from components.roles import BuiltInRole, assign_role


@dataclass
class KeyVaultArgs:
    context: StackContext
    settings: KeyVaultConfig  # SKU and soft-delete retention
    access: PrivateAccess  # resource group, endpoint subnet, DNS zones, workspace
    protect: bool  # against `pulumi destroy` and replacement (prod): a purged vault takes its keys along
    # Secrets to generate (name -> random bytes, stored hex-encoded) and the identity that may read them
    # (Key Vault Secrets User on each secret).
    generated_secrets: Mapping[str, int]
    secret_reader_principal_id: pulumi.Input[str]
    # Let trusted Azure services past the vault's network rules (public access stays off): the ingress
    # Application Gateway reads its listener certificate from here. Microsoft's baseline sets it for that
    # reason, beside the vault's private endpoint ("Required for AppGW communication": Azure-Samples/
    # openai-end-to-end-baseline, infra-as-code/bicep/key-vault.bicep); application-gateway/key-vault-certs.md
    # lists Application Gateway as a trusted service. Role assignments still decide what anyone may read.
    trusted_services_bypass: bool = False


class KeyVault(pulumi.ComponentResource):
    vault_id: pulumi.Output[str]
    vault_uri: pulumi.Output[str]
    # name -> versionless secret URI, so a rotated secret is picked up without redeploying the app.
    secret_uris: dict[str, pulumi.Output[str]]
    # What must exist before the reader resolves a Key Vault reference: each secret, the reader's grant on
    # it, and the vault's private endpoint with its DNS records. App Service resolves references when the
    # app starts; one that fails is used as its literal text and retried only about once a day.
    references_ready: list[pulumi.Resource]
    # The vault's private endpoint and its DNS records: a client inside the VNet can reach the vault once
    # these exist (the ingress gateway fetches its certificate through them).
    reachable: list[pulumi.Resource]

    def __init__(self, name: str, args: KeyVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:security:KeyVault", name, None, opts)
        context = args.context
        settings = args.settings
        vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=context.unique_name("kv", max_length=24),
            resource_group_name=args.access.resource_group_name,
            location=context.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=context.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=settings.sku),
                enable_rbac_authorization=True,  # the API default is access policies; RBAC is auditable
                enable_soft_delete=True,
                soft_delete_retention_in_days=settings.soft_delete_retention_days,
                enable_purge_protection=True,
                public_network_access="Disabled",
                network_acls=keyvault.NetworkRuleSetArgs(
                    default_action="Deny", bypass="AzureServices" if args.trusted_services_bypass else "None"
                ),
            ),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.vault_id = vault.id
        self.vault_uri = vault.properties.vault_uri
        connection = connect_privately(
            f"{name}-vault",
            target=KEY_VAULT,
            service=vault,
            access=args.access,
            location=context.location,
            tags=context.tags,
            parent=self,
        )
        self.reachable = list(connection.resources)
        self.references_ready = list(connection.resources)
        self.secret_uris = {
            secret_name: self._generated_secret(name, vault, secret_name, byte_length, args)
            for secret_name, byte_length in args.generated_secrets.items()
        }
        self.register_outputs({"vault_id": self.vault_id, "vault_uri": self.vault_uri})

    def _generated_secret(
        self, name: str, vault: keyvault.Vault, secret_name: str, byte_length: int, args: KeyVaultArgs
    ) -> pulumi.Output[str]:
        # RandomBytes keeps its result secret in the state, like a password, but gives key material.
        value = random.RandomBytes(
            f"{name}-{secret_name}-value", length=byte_length, opts=pulumi.ResourceOptions(parent=self)
        )
        secret = keyvault.Secret(
            f"{name}-{secret_name}",
            secret_name=secret_name,
            vault_name=vault.name,
            resource_group_name=args.access.resource_group_name,
            properties=keyvault.SecretPropertiesArgs(value=value.hex, content_type="text/plain"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Least privilege: the reader may read this secret, not every secret in the vault.
        grant = assign_role(
            f"{name}-{secret_name}-reader",
            role=BuiltInRole.KEY_VAULT_SECRETS_USER,
            scope=secret.id,
            principal_id=args.secret_reader_principal_id,
            parent=self,
        )
        self.references_ready += [secret, grant]
        return pulumi.Output.concat(vault.properties.vault_uri, "secrets/", secret_name)
