"""Mandatory per-resource rules: the security baseline each kind of service promises.

Each rule reads only the resource's own properties. Settings whose Azure default is already safe
(for example a registry's admin user, off unless turned on) may be absent; settings whose default is
unsafe (public network access is on unless turned off) must be set explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import PRODUCTION_ENVIRONMENTS, environment_of, expect, items, prop, resource_rule, same_text

# ---------------------------------------------------------------------------------------------------
# Network exposure: the data and model services are reachable only through private endpoints.
# ---------------------------------------------------------------------------------------------------


def _public_access_off(path: str, acl_path: str | None = None):
    def check(props: Mapping[str, Any], _args) -> list[str]:
        problems = expect(props, path, "Disabled")
        if acl_path and prop(props, acl_path) is not None:
            problems += expect(props, acl_path, "Deny")
        return problems

    return check


def _postgres_not_public(props: Mapping[str, Any], _args) -> list[str]:
    # A server injected into a delegated subnet has no public endpoint at all.
    if prop(props, "network.delegatedSubnetResourceId"):
        return []
    return expect(props, "network.publicNetworkAccess", "Disabled")


PUBLIC_ACCESS_RULES = [
    resource_rule(
        "keyvault-no-public-network-access",
        types=["keyvault:Vault"],
        description="Key Vault accepts no traffic from the internet; the app reaches it through its private endpoint.",
        remediation="set properties.public_network_access='Disabled' and network_acls default_action='Deny' "
        "on the keyvault.Vault (components/key_vault.py)",
        check=_public_access_off("properties.publicNetworkAccess", "properties.networkAcls.defaultAction"),
    ),
    resource_rule(
        "registry-no-public-network-access",
        types=["containerregistry:Registry"],
        description="The container registry accepts no traffic from the internet; App Service pulls images "
        "through the private endpoint.",
        remediation="set public_network_access='Disabled' on the containerregistry.Registry; push images from an "
        "agent inside the VNet (the dev-only registry.buildAgentIpRanges switch turns public access on and "
        "needs an explicit policy exception)",
        check=_public_access_off("publicNetworkAccess", "networkRuleSet.defaultAction"),
    ),
    resource_rule(
        "postgres-no-public-network-access",
        types=["dbforpostgresql:Server"],
        description="PostgreSQL has no public endpoint: either public network access is Disabled (private "
        "endpoint mode) or the server is injected into a delegated subnet.",
        remediation="set network=NetworkArgs(public_network_access='Disabled') on the dbforpostgresql.Server "
        "(components/postgres.py) and keep its private endpoint",
        check=_postgres_not_public,
    ),
    resource_rule(
        "openai-no-public-network-access",
        types=["cognitiveservices:Account"],
        description="Azure OpenAI accounts accept no traffic from the internet; only API Management reaches them, "
        "through private endpoints.",
        remediation="set properties.public_network_access='Disabled' (and network_acls default_action='Deny') on "
        "the cognitiveservices.Account (components/openai.py)",
        check=_public_access_off("properties.publicNetworkAccess", "properties.networkAcls.defaultAction"),
    ),
]


def _registry_export_disabled(props: Mapping[str, Any], _args) -> list[str]:
    # Azure accepts the export policy only while public network access is off (dev's build-agent switch
    # turns it on; that case is already an exception to registry-no-public-network-access).
    if not same_text(prop(props, "publicNetworkAccess"), "Disabled"):
        return []
    return expect(props, "policies.exportPolicy.status", "disabled")


EXFILTRATION_RULES = [
    resource_rule(
        "registry-export-disabled",
        types=["containerregistry:Registry"],
        description="Images cannot leave the private registry by import into another registry or a transfer "
        "pipeline (the export policy is disabled; Azure allows that only with public network access off).",
        remediation="set policies=PoliciesArgs(export_policy=ExportPolicyArgs(status='disabled')) on the "
        "containerregistry.Registry (components/registry.py)",
        check=_registry_export_disabled,
    ),
    resource_rule(
        "openai-no-trusted-service-bypass",
        types=["cognitiveservices:Account"],
        description="Azure OpenAI accounts let no 'trusted Azure service' past their network rules: only the "
        "gateway reaches them, through private endpoints (the API's default bypass is AzureServices).",
        remediation="set network_acls=NetworkRuleSetArgs(default_action='Deny', bypass='None') in the account's "
        "properties (components/openai.py)",
        check=lambda props, _args: expect(props, "properties.networkAcls.bypass", "None"),
    ),
]

# ---------------------------------------------------------------------------------------------------
# Keyless: no shared keys, admin passwords or local accounts anywhere.
# ---------------------------------------------------------------------------------------------------


def _key_vault_protection(props: Mapping[str, Any], _args) -> list[str]:
    # Soft delete is on by default (and can no longer be turned off); purge protection is off by default.
    return expect(props, "properties.enableSoftDelete", True, absent_ok=True) + expect(
        props, "properties.enablePurgeProtection", True
    )


def _registry_no_shared_access(props: Mapping[str, Any], _args) -> list[str]:
    return expect(props, "adminUserEnabled", False, absent_ok=True) + expect(
        props, "anonymousPullEnabled", False, absent_ok=True
    )


def _postgres_entra_only(props: Mapping[str, Any], _args) -> list[str]:
    problems = expect(props, "authConfig.activeDirectoryAuth", "Enabled") + expect(
        props, "authConfig.passwordAuth", "Disabled"
    )
    if prop(props, "administratorLogin") or prop(props, "administratorLoginPassword"):
        problems.append(
            "administratorLogin/administratorLoginPassword are set; an Entra-only server has no password login"
        )
    return problems


# PostgreSQL server parameters that decide whether connections are encrypted.
_TLS_VERSIONS_ALLOWED = ("TLSv1.2", "TLSv1.3")


def _postgres_tls(props: Mapping[str, Any], _args) -> list[str]:
    name, value = prop(props, "configurationName"), prop(props, "value")
    if same_text(name, "require_secure_transport") and not same_text(value, "on"):
        return [f"require_secure_transport is {value!r}; it must be 'ON' so that only TLS connections are accepted"]
    if same_text(name, "ssl_min_protocol_version") and not any(same_text(value, v) for v in _TLS_VERSIONS_ALLOWED):
        return [f"ssl_min_protocol_version is {value!r}; allowed: {', '.join(_TLS_VERSIONS_ALLOWED)}"]
    return []


IDENTITY_RULES = [
    resource_rule(
        "keyvault-rbac-authorization",
        types=["keyvault:Vault"],
        description="Key Vault uses Azure RBAC, not access policies, so every grant is an auditable role "
        "assignment (the API default is access policies).",
        remediation="set properties.enable_rbac_authorization=True on the keyvault.Vault",
        check=lambda props, _args: expect(props, "properties.enableRbacAuthorization", True),
    ),
    resource_rule(
        "keyvault-soft-delete-and-purge-protection",
        types=["keyvault:Vault"],
        description="Deleted secrets can be recovered (soft delete) and nobody can purge them before the "
        "retention period ends (purge protection).",
        remediation="set properties.enable_soft_delete=True and properties.enable_purge_protection=True "
        "(purge protection cannot be turned off again once on)",
        check=_key_vault_protection,
    ),
    resource_rule(
        "registry-no-admin-user-or-anonymous-pull",
        types=["containerregistry:Registry"],
        description="The registry has no shared admin password and does not serve images to anonymous callers; "
        "pulls are authorised per identity (AcrPull).",
        remediation="set admin_user_enabled=False and anonymous_pull_enabled=False on the containerregistry.Registry",
        check=_registry_no_shared_access,
    ),
    resource_rule(
        "postgres-entra-only-auth",
        types=["dbforpostgresql:Server"],
        description="PostgreSQL accepts Microsoft Entra tokens only: password authentication is off and no "
        "administrator password exists.",
        remediation="set auth_config active_directory_auth='Enabled', password_auth='Disabled' and no "
        "administrator_login/administrator_login_password; add Entra admins with dbforpostgresql.Administrator",
        check=_postgres_entra_only,
    ),
    resource_rule(
        "postgres-tls-required",
        types=["dbforpostgresql:Configuration"],
        description="PostgreSQL server parameters keep TLS mandatory: require_secure_transport stays ON and the "
        "minimum protocol is TLS 1.2 or newer.",
        remediation="set require_secure_transport to 'ON' (components/postgres.py SERVER_PARAMETERS) and "
        "ssl_min_protocol_version to 'TLSv1.2' or 'TLSv1.3'",
        check=_postgres_tls,
    ),
    resource_rule(
        "openai-local-auth-disabled",
        types=["cognitiveservices:Account"],
        description="Azure OpenAI accounts accept Entra tokens only; API keys are disabled, so a leaked key "
        "grants nothing.",
        remediation="set properties.disable_local_auth=True on the cognitiveservices.Account",
        check=lambda props, _args: expect(props, "properties.disableLocalAuth", True),
    ),
]

# ---------------------------------------------------------------------------------------------------
# App Service
# ---------------------------------------------------------------------------------------------------

_TLS_MINIMUMS_ALLOWED = ("1.2", "1.3")
# App settings that would carry a registry password (the pre-managed-identity way of pulling images).
_REGISTRY_PASSWORD_SETTINGS = ("DOCKER_REGISTRY_SERVER_PASSWORD", "DOCKER_REGISTRY_SERVER_USERNAME")


def _web_app_tls(props: Mapping[str, Any], _args) -> list[str]:
    problems = []
    for path in ("siteConfig.minTlsVersion", "siteConfig.scmMinTlsVersion"):
        value = prop(props, path)
        if value not in _TLS_MINIMUMS_ALLOWED:
            problems.append(f"{path} is {value!r}; allowed: {', '.join(_TLS_MINIMUMS_ALLOWED)}")
    return problems


def _web_app_registry_identity(props: Mapping[str, Any], _args) -> list[str]:
    image = prop(props, "siteConfig.linuxFxVersion", "")
    if not str(image).upper().startswith("DOCKER|"):
        return []  # not a container app: nothing is pulled
    problems = expect(props, "siteConfig.acrUseManagedIdentityCreds", True)
    user_assigned = "userassigned" in str(prop(props, "identity.type", "")).lower().replace(" ", "").replace(",", "")
    if user_assigned and not prop(props, "siteConfig.acrUserManagedIdentityID"):
        problems.append(
            "siteConfig.acrUserManagedIdentityID is not set; with a user-assigned identity App Service "
            "needs its client id to pull"
        )
    names = {prop(s, "name") for s in items(prop(props, "siteConfig.appSettings"))}
    problems += [
        f"app setting {n} is set; registry credentials must not be stored"
        for n in _REGISTRY_PASSWORD_SETTINGS
        if n in names
    ]
    return problems


def _basic_auth_off(props: Mapping[str, Any], _args) -> list[str]:
    return expect(props, "allow", False)


WEB_APP_RULES = [
    resource_rule(
        "webapp-https-only",
        types=["web:WebApp"],
        description="The web app redirects every HTTP request to HTTPS.",
        remediation="set https_only=True on the web.WebApp (components/app_service.py)",
        check=lambda props, _args: expect(props, "httpsOnly", True),
    ),
    resource_rule(
        "webapp-min-tls-1-2",
        types=["web:WebApp"],
        description="The site and its SCM (deployment) endpoint refuse TLS versions older than 1.2.",
        remediation="set site_config min_tls_version='1.2' and scm_min_tls_version='1.2' (or '1.3')",
        check=_web_app_tls,
    ),
    resource_rule(
        "webapp-ftp-disabled",
        types=["web:WebApp"],
        description="FTP and FTPS deployment are off; deployments go through the registry image only.",
        remediation="set site_config ftps_state='Disabled'",
        check=lambda props, _args: expect(props, "siteConfig.ftpsState", "Disabled"),
    ),
    resource_rule(
        "webapp-basic-publishing-credentials-disabled",
        types=["web:WebAppFtpAllowed", "web:WebAppScmAllowed"],
        description="Basic (user name and password) publishing credentials are off for FTP and for the SCM site.",
        remediation="set allow=False on web.WebAppFtpAllowed and web.WebAppScmAllowed",
        check=_basic_auth_off,
    ),
    resource_rule(
        "webapp-registry-pull-with-managed-identity",
        types=["web:WebApp"],
        description="App Service pulls its container image with a managed identity, never with a registry "
        "user name and password.",
        remediation="set site_config acr_use_managed_identity_creds=True and acr_user_managed_identity_id=<the "
        "identity's client id>; remove DOCKER_REGISTRY_SERVER_* app settings",
        check=_web_app_registry_identity,
    ),
]

# ---------------------------------------------------------------------------------------------------
# API Management: the gateway in front of the models is private and calls them with its identity.
# ---------------------------------------------------------------------------------------------------


def _apim_private(props: Mapping[str, Any], _args) -> list[str]:
    network_type = prop(props, "virtualNetworkType", "None")
    if same_text(network_type, "Internal") or same_text(prop(props, "publicNetworkAccess"), "Disabled"):
        return []
    exposed = f"virtualNetworkType is {network_type!r} and public network access is on"
    return [f"{exposed}; the gateway would be reachable from the internet"]


def _apim_identity(props: Mapping[str, Any], _args) -> list[str]:
    identity_type = str(prop(props, "identity.type", "None"))
    if "assigned" in identity_type.lower():
        return []
    return [
        f"identity.type is {identity_type!r}; the gateway needs a managed identity to call Azure OpenAI without keys"
    ]


GATEWAY_RULES = [
    resource_rule(
        "apim-not-public",
        types=["apimanagement:ApiManagementService"],
        description="API Management runs in internal VNet mode (or with public network access off), so the "
        "model gateway is reachable only from inside the network.",
        remediation="set virtual_network_type='Internal' with virtual_network_configuration in the apiManagement "
        "subnet (components/gateway.py)",
        check=_apim_private,
    ),
    resource_rule(
        "apim-managed-identity",
        types=["apimanagement:ApiManagementService"],
        description="API Management has a managed identity, which it uses to call Azure OpenAI (no API keys).",
        remediation="set identity=ApiManagementServiceIdentityArgs(type='SystemAssigned') on the service",
        check=_apim_identity,
    ),
]

# ---------------------------------------------------------------------------------------------------
# Network edge in prod: the WAF blocks what it detects; no subnet reaches the internet by default.
# ---------------------------------------------------------------------------------------------------


def _waf_blocks_in_prod(props: Mapping[str, Any], args) -> list[str]:
    if environment_of(props, args.urn) not in PRODUCTION_ENVIRONMENTS:
        return []  # dev may run Detection while exclusions are tuned
    return expect(props, "policySettings.state", "Enabled") + expect(props, "policySettings.mode", "Prevention")


def _subnets_private_in_prod(props: Mapping[str, Any], args) -> list[str]:
    if environment_of(props, args.urn) not in PRODUCTION_ENVIRONMENTS:
        return []
    if args.resource_type.endswith(":Subnet"):
        return expect(props, "defaultOutboundAccess", False)
    return [
        f"subnet {prop(subnet, 'name')} has defaultOutboundAccess {prop(subnet, 'defaultOutboundAccess')!r}; "
        "it must be False"
        for subnet in items(prop(props, "subnets"))
        if prop(subnet, "defaultOutboundAccess") is not False
    ]


NETWORK_EDGE_RULES = [
    resource_rule(
        "waf-prevention-in-prod",
        types=["network:WebApplicationFirewallPolicy"],
        description="In prod the web application firewall in front of the app is on and blocks what its rule "
        "sets match (Prevention); Detection only logs, which is for tuning exclusions outside prod.",
        remediation="set aichat:ingress.applicationGateway.wafMode: Prevention in Pulumi.prod.yaml (components/"
        "ingress.py sets policy_settings state 'Enabled' and that mode)",
        check=_waf_blocks_in_prod,
    ),
    resource_rule(
        "default-outbound-access-off-in-prod",
        types=["network:VirtualNetwork", "network:Subnet"],
        description="In prod every subnet is private (defaultOutboundAccess false): nothing reaches the internet "
        "unless a route sends it through the firewall (Azure Policy's built-in 'Subnets should be private').",
        remediation="set aichat:egress.mode: firewall in Pulumi.prod.yaml (components/network.py then sets "
        "default_outbound_access=False on every subnet)",
        check=_subnets_private_in_prod,
    ),
]

# ---------------------------------------------------------------------------------------------------
# Lifecycle: the resources that hold data cannot be deleted by a careless `pulumi destroy` in prod.
# ---------------------------------------------------------------------------------------------------

STATEFUL_TYPES = ("keyvault:Vault", "containerregistry:Registry", "dbforpostgresql:Server")


def _protected_in_prod(props: Mapping[str, Any], args) -> list[str]:
    environment = environment_of(props, args.urn)
    if environment in PRODUCTION_ENVIRONMENTS and not args.opts.protect:
        return [f"this {environment} resource holds state but is not protected (protect=False)"]
    return []


def _model_version_pinned_in_prod(props: Mapping[str, Any], args) -> list[str]:
    if environment_of(props, args.urn) not in PRODUCTION_ENVIRONMENTS:
        return []
    return expect(props, "properties.versionUpgradeOption", "NoAutoUpgrade")


LIFECYCLE_RULES = [
    resource_rule(
        "openai-model-version-pinned-in-prod",
        types=["cognitiveservices:Deployment"],
        description="prod model deployments never change model version on their own: a new version is a "
        "reviewed config change (the config check warns 60 days before the configured one closes).",
        remediation="set properties.version_upgrade_option='NoAutoUpgrade' on prod's cognitiveservices.Deployment "
        "(components/openai.py model_upgrade_option)",
        check=_model_version_pinned_in_prod,
    ),
    resource_rule(
        "stateful-resources-protected-in-prod",
        types=STATEFUL_TYPES,
        description="In prod, Key Vault, the container registry and PostgreSQL carry Pulumi's protect flag, so "
        "deleting them needs a deliberate unprotect first.",
        remediation="set aichat:protectStatefulResources: true in Pulumi.prod.yaml (components pass it as "
        "ResourceOptions(protect=...))",
        check=_protected_in_prod,
    ),
]

RULES = [
    *PUBLIC_ACCESS_RULES,
    *EXFILTRATION_RULES,
    *IDENTITY_RULES,
    *WEB_APP_RULES,
    *GATEWAY_RULES,
    *NETWORK_EDGE_RULES,
    *LIFECYCLE_RULES,
]
