"""Every rule of the pack, with a compliant resource (no finding) and a non-compliant one (a finding).

The resources are synthetic: each case starts from a compliant example in `synthetic.py` and changes
exactly one setting, so a failing test points at the one check that stopped working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from components.roles import BuiltInRole
from policy.rules import POLICIES, is_mandatory, policy_named
from policy.rules.stack_wide import PRIVILEGED_ROLES
from tests.policy.synthetic import (
    APIM,
    APP_SERVICE_PLAN,
    BASIC_AUTH_OFF,
    MODEL_DEPLOYMENT_PROD,
    OPENAI_ACCOUNT,
    POSTGRES_SERVER,
    POSTGRES_TLS_PARAMETER,
    REGISTRY,
    TAGS,
    VAULT,
    VNET_PROD,
    WAF_POLICY_PROD,
    WEB_APP,
    arm_id,
    changed,
    registration,
)
from tools.policy_run import Violation, evaluate


@dataclass(frozen=True)
class Case:
    """A rule, a resource type, a compliant example, and the broken copy with the text the finding must contain."""

    rule: str
    type: str
    good: Mapping[str, Any]
    bad: Mapping[str, Any]
    says: str
    stack: str = "dev"
    good_protect: bool = False

    @property
    def id(self) -> str:
        return f"{self.rule}/{self.says[:40]}"


CASES = [
    Case(
        "registry-export-disabled",
        "containerregistry:Registry",
        REGISTRY,
        changed(REGISTRY, "policies.exportPolicy.status", "enabled"),
        "exportPolicy.status is 'enabled'",
    ),
    Case(
        "registry-export-disabled",
        "containerregistry:Registry",
        REGISTRY,
        changed(REGISTRY, "policies"),
        "exportPolicy.status is not set",
    ),
    Case(
        "openai-no-trusted-service-bypass",
        "cognitiveservices:Account",
        OPENAI_ACCOUNT,
        changed(OPENAI_ACCOUNT, "properties.networkAcls.bypass", "AzureServices"),
        "bypass is 'AzureServices'",
    ),
    Case(
        "openai-model-version-pinned-in-prod",
        "cognitiveservices:Deployment",
        MODEL_DEPLOYMENT_PROD,
        changed(MODEL_DEPLOYMENT_PROD, "properties.versionUpgradeOption", "OnceNewDefaultVersionAvailable"),
        "versionUpgradeOption is 'OnceNewDefaultVersionAvailable'",
        stack="prod",
    ),
    Case(
        "keyvault-no-public-network-access",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.publicNetworkAccess", "Enabled"),
        "publicNetworkAccess is 'Enabled'",
    ),
    Case(
        "keyvault-no-public-network-access",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.publicNetworkAccess"),
        "publicNetworkAccess is not set",
    ),
    Case(
        "keyvault-no-public-network-access",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.networkAcls.defaultAction", "Allow"),
        "defaultAction is 'Allow'",
    ),
    Case(
        "registry-no-public-network-access",
        "containerregistry:Registry",
        REGISTRY,
        changed(REGISTRY, "publicNetworkAccess", "Enabled"),
        "publicNetworkAccess is 'Enabled'",
    ),
    Case(
        "postgres-no-public-network-access",
        "dbforpostgresql:Server",
        POSTGRES_SERVER,
        changed(POSTGRES_SERVER, "network.publicNetworkAccess", "Enabled"),
        "publicNetworkAccess is 'Enabled'",
    ),
    Case(
        "postgres-no-public-network-access",
        "dbforpostgresql:Server",
        changed(
            POSTGRES_SERVER,
            "network",
            {"delegatedSubnetResourceId": arm_id("Microsoft.Network/virtualNetworks", "v/subnets/db")},
        ),
        changed(POSTGRES_SERVER, "network"),
        "publicNetworkAccess is not set",
    ),
    Case(
        "openai-no-public-network-access",
        "cognitiveservices:Account",
        OPENAI_ACCOUNT,
        changed(OPENAI_ACCOUNT, "properties.publicNetworkAccess", "Enabled"),
        "publicNetworkAccess is 'Enabled'",
    ),
    Case(
        "keyvault-rbac-authorization",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.enableRbacAuthorization"),
        "enableRbacAuthorization is not set",
    ),
    Case(
        "keyvault-rbac-authorization",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.enableRbacAuthorization", False),
        "enableRbacAuthorization is False",
    ),
    Case(
        "keyvault-soft-delete-and-purge-protection",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.enablePurgeProtection", False),
        "enablePurgeProtection is False",
    ),
    Case(
        "keyvault-soft-delete-and-purge-protection",
        "keyvault:Vault",
        VAULT,
        changed(VAULT, "properties.enableSoftDelete", False),
        "enableSoftDelete is False",
    ),
    Case(
        "registry-no-admin-user-or-anonymous-pull",
        "containerregistry:Registry",
        REGISTRY,
        changed(REGISTRY, "adminUserEnabled", True),
        "adminUserEnabled is True",
    ),
    Case(
        "registry-no-admin-user-or-anonymous-pull",
        "containerregistry:Registry",
        REGISTRY,
        changed(REGISTRY, "anonymousPullEnabled", True),
        "anonymousPullEnabled is True",
    ),
    Case(
        "postgres-entra-only-auth",
        "dbforpostgresql:Server",
        POSTGRES_SERVER,
        changed(POSTGRES_SERVER, "authConfig.passwordAuth", "Enabled"),
        "passwordAuth is 'Enabled'",
    ),
    Case(
        "postgres-entra-only-auth",
        "dbforpostgresql:Server",
        POSTGRES_SERVER,
        changed(POSTGRES_SERVER, "administratorLoginPassword", "hunter2"),
        "administratorLoginPassword are set",
    ),
    Case(
        "postgres-tls-required",
        "dbforpostgresql:Configuration",
        POSTGRES_TLS_PARAMETER,
        changed(POSTGRES_TLS_PARAMETER, "value", "OFF"),
        "require_secure_transport is 'OFF'",
    ),
    Case(
        "postgres-tls-required",
        "dbforpostgresql:Configuration",
        {"configurationName": "ssl_min_protocol_version", "value": "TLSv1.2"},
        {"configurationName": "ssl_min_protocol_version", "value": "TLSv1.1"},
        "ssl_min_protocol_version is 'TLSv1.1'",
    ),
    Case(
        "openai-local-auth-disabled",
        "cognitiveservices:Account",
        OPENAI_ACCOUNT,
        changed(OPENAI_ACCOUNT, "properties.disableLocalAuth", False),
        "disableLocalAuth is False",
    ),
    Case("webapp-https-only", "web:WebApp", WEB_APP, changed(WEB_APP, "httpsOnly", False), "httpsOnly is False"),
    Case(
        "webapp-min-tls-1-2",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.minTlsVersion", "1.0"),
        "minTlsVersion is '1.0'",
    ),
    Case(
        "webapp-min-tls-1-2",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.scmMinTlsVersion"),
        "scmMinTlsVersion is None",
    ),
    Case(
        "webapp-ftp-disabled",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.ftpsState", "AllAllowed"),
        "ftpsState is 'AllAllowed'",
    ),
    Case(
        "webapp-basic-publishing-credentials-disabled",
        "web:WebAppFtpAllowed",
        BASIC_AUTH_OFF,
        changed(BASIC_AUTH_OFF, "allow", True),
        "allow is True",
    ),
    Case(
        "webapp-basic-publishing-credentials-disabled",
        "web:WebAppScmAllowed",
        BASIC_AUTH_OFF,
        changed(BASIC_AUTH_OFF, "allow", True),
        "allow is True",
    ),
    Case(
        "webapp-registry-pull-with-managed-identity",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.acrUseManagedIdentityCreds", False),
        "acrUseManagedIdentityCreds is False",
    ),
    Case(
        "webapp-registry-pull-with-managed-identity",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.acrUserManagedIdentityID"),
        "acrUserManagedIdentityID is not set",
    ),
    Case(
        "webapp-registry-pull-with-managed-identity",
        "web:WebApp",
        WEB_APP,
        changed(WEB_APP, "siteConfig.appSettings", [{"name": "DOCKER_REGISTRY_SERVER_PASSWORD", "value": "x"}]),
        "DOCKER_REGISTRY_SERVER_PASSWORD is set",
    ),
    Case(
        "apim-not-public",
        "apimanagement:ApiManagementService",
        APIM,
        changed(APIM, "virtualNetworkType", "External"),
        "virtualNetworkType is 'External'",
    ),
    Case(
        "apim-managed-identity",
        "apimanagement:ApiManagementService",
        APIM,
        changed(APIM, "identity"),
        "identity.type is 'None'",
    ),
    Case(
        "waf-prevention-in-prod",
        "network:WebApplicationFirewallPolicy",
        WAF_POLICY_PROD,
        changed(WAF_POLICY_PROD, "policySettings.mode", "Detection"),
        "policySettings.mode is 'Detection'",
        stack="prod",
    ),
    Case(
        "waf-prevention-in-prod",
        "network:WebApplicationFirewallPolicy",
        WAF_POLICY_PROD,
        changed(WAF_POLICY_PROD, "policySettings.state", "Disabled"),
        "policySettings.state is 'Disabled'",
        stack="prod",
    ),
    Case(
        "default-outbound-access-off-in-prod",
        "network:VirtualNetwork",
        VNET_PROD,
        changed(VNET_PROD, "subnets", [{**VNET_PROD["subnets"][0], "defaultOutboundAccess": True}]),
        "subnet snet-app has defaultOutboundAccess True",
        stack="prod",
    ),
    Case(
        "default-outbound-access-off-in-prod",
        "network:VirtualNetwork",
        VNET_PROD,
        changed(VNET_PROD, "subnets", [{"name": "snet-jobs", "addressPrefix": "10.50.3.0/27"}]),
        "subnet snet-jobs has defaultOutboundAccess None",
        stack="prod",
    ),
    Case(
        "default-outbound-access-off-in-prod",
        "network:Subnet",
        {"tags": {"environment": "prod"}, "defaultOutboundAccess": False},
        {"tags": {"environment": "prod"}},
        "defaultOutboundAccess is not set",
        stack="prod",
    ),
    Case(
        "stateful-resources-protected-in-prod",
        "dbforpostgresql:Server",
        changed(POSTGRES_SERVER, "tags.environment", "prod"),
        changed(POSTGRES_SERVER, "tags.environment", "prod"),
        "is not protected",
        stack="prod",
        good_protect=True,
    ),
    Case("required-tags", "keyvault:Vault", VAULT, changed(VAULT, "tags.owner"), "tags owner are missing"),
    Case(
        "required-tags",
        "web:AppServicePlan",
        APP_SERVICE_PLAN,
        changed(APP_SERVICE_PLAN, "tags"),
        "tags workload, environment, owner are missing",
    ),
    Case(
        "allowed-skus-per-environment",
        "web:AppServicePlan",
        APP_SERVICE_PLAN,
        changed(APP_SERVICE_PLAN, "sku.name", "P3v3"),
        "sku.name 'P3v3' is not in the dev list",
    ),
    Case(
        "allowed-skus-per-environment",
        "apimanagement:ApiManagementService",
        changed(APIM, "tags.environment", "prod") | {"sku": {"name": "Premium"}},
        changed(APIM, "tags.environment", "prod"),
        "sku.name 'Developer' is not in the prod list",
        stack="prod",
    ),
]


def findings(rule: str, *resources) -> list[Violation]:
    return evaluate(list(resources), [policy_named(rule)])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compliant_example_passes(case: Case):
    resource = registration(case.type, case.good, stack=case.stack, protect=case.good_protect)
    assert findings(case.rule, resource) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_setting_is_reported_with_rule_resource_and_fix(case: Case):
    resource = registration(case.type, case.bad, name="broken-one", stack=case.stack)
    found = findings(case.rule, resource)
    assert len(found) == 1, found
    text = str(found[0])
    assert case.says in text
    assert case.rule in text and "broken-one" in text and "Fix: " in text


def test_rules_ignore_resource_types_they_are_not_about():
    unrelated = registration("network:VirtualNetwork", {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}})
    resource_rules = [p for p in POLICIES if p.name not in STACK_RULES and p.name != "required-tags"]
    assert evaluate([unrelated], resource_rules) == []


def test_dev_model_deployments_may_follow_azures_upgrades():
    upgrading = changed(MODEL_DEPLOYMENT_PROD, "properties.versionUpgradeOption", "OnceCurrentVersionExpired")
    deployment = registration("cognitiveservices:Deployment", upgrading, stack="dev")
    assert findings("openai-model-version-pinned-in-prod", deployment) == []


def test_a_registry_open_to_build_agents_may_keep_its_export_policy():
    # Azure refuses a disabled export policy while public network access is on (dev's build-agent switch).
    opened = changed(changed(REGISTRY, "publicNetworkAccess", "Enabled"), "policies")
    assert findings("registry-export-disabled", registration("containerregistry:Registry", opened)) == []


def test_dev_may_run_the_waf_in_detection_and_keep_default_outbound_access():
    detecting = changed(changed(WAF_POLICY_PROD, "tags.environment", "dev"), "policySettings.mode", "Detection")
    assert findings("waf-prevention-in-prod", registration("network:WebApplicationFirewallPolicy", detecting)) == []
    open_subnet = changed(VNET_PROD, "tags.environment", "dev")
    open_subnet["subnets"][0]["defaultOutboundAccess"] = True
    assert findings("default-outbound-access-off-in-prod", registration("network:VirtualNetwork", open_subnet)) == []


def test_stateful_resources_need_no_protection_outside_prod():
    assert findings("stateful-resources-protected-in-prod", registration("keyvault:Vault", VAULT, protect=False)) == []


# -------------------------------------------------------------------------------------------------
# Stack-wide rules: relations between resources.
# -------------------------------------------------------------------------------------------------

STACK_RULES = (
    "registry-trusted-services-for-identity-pulls",
    "private-endpoint-dns-zone-group",
    "no-privileged-roles-for-workloads",
    "diagnostic-settings-on-every-service",
    "webapp-private-behind-gateway",
    "egress-subnets-routed-to-firewall",
)
ENDPOINT_ID = arm_id("Microsoft.Network/privateEndpoints", "pe-vault")


def registry_and_job(bypass: str) -> tuple:
    registry = registration(
        "containerregistry:Registry",
        {
            **REGISTRY,
            "registryName": "craichat",
            "loginServer": "craichat.azurecr.io",
            "networkRuleBypassOptions": bypass,
        },
        name="registry",
    )
    job = registration(
        "containerinstance:ContainerGroup",
        {"imageRegistryCredentials": [{"server": "craichat.azurecr.io", "identity": arm_id("id", "job")}]},
        name="job",
    )
    return registry, job


def test_a_registry_that_lets_trusted_services_through_serves_identity_pulls():
    assert findings("registry-trusted-services-for-identity-pulls", *registry_and_job("AzureServices")) == []


def test_a_private_registry_that_a_job_pulls_from_by_identity_must_let_trusted_services_through():
    found = findings("registry-trusted-services-for-identity-pulls", *registry_and_job("None"))
    assert [v.resource_name for v in found] == ["registry"] and "the pull is refused" in str(found[0])


def test_no_trusted_service_exception_is_needed_without_a_container_group():
    registry, _job = registry_and_job("None")
    assert findings("registry-trusted-services-for-identity-pulls", registry) == []


ZONE_CONFIGS = [
    {
        "name": "vaultcore",
        "privateDnsZoneId": arm_id("Microsoft.Network/privateDnsZones", "privatelink.vaultcore.azure.net"),
    }
]


def endpoint():
    return registration(
        "network:PrivateEndpoint",
        {
            "location": "swedencentral",
            "tags": TAGS,
            "resourceGroupName": "rg-test",
            "name": "pe-vault",
            "id": ENDPOINT_ID,
        },
        name="vault-pe",
    )


def test_private_endpoint_with_zone_group_passes():
    group = registration(
        "network:PrivateDnsZoneGroup",
        {"privateEndpointName": "pe-vault", "resourceGroupName": "rg-test", "privateDnsZoneConfigs": ZONE_CONFIGS},
        name="vault-dns",
    )
    assert findings("private-endpoint-dns-zone-group", endpoint(), group) == []


def test_zone_group_found_by_its_id_as_azure_reports_it():
    group_id = f"{ENDPOINT_ID}/privateDnsZoneGroups/default"
    group = registration(
        "network:PrivateDnsZoneGroup", {"privateDnsZoneConfigs": ZONE_CONFIGS, "id": group_id}, name="vault-dns"
    )
    assert findings("private-endpoint-dns-zone-group", endpoint(), group) == []


def test_private_endpoint_without_zone_group_is_reported():
    other_group = registration(
        "network:PrivateDnsZoneGroup",
        {"privateEndpointName": "pe-other", "resourceGroupName": "rg-test", "privateDnsZoneConfigs": ZONE_CONFIGS},
        name="other-dns",
    )
    found = findings("private-endpoint-dns-zone-group", endpoint(), other_group)
    assert [(v.resource_name, v.mandatory) for v in found] == [("vault-pe", True)]
    assert "has no private DNS zone group" in str(found[0]) and "private-endpoint-dns-zone-group" in str(found[0])


def test_zone_group_without_zones_is_reported():
    empty = registration(
        "network:PrivateDnsZoneGroup",
        {"privateEndpointName": "pe-vault", "resourceGroupName": "rg-test", "privateDnsZoneConfigs": []},
        name="vault-dns",
    )
    assert "no zones" in str(findings("private-endpoint-dns-zone-group", endpoint(), empty)[0])


WORKLOAD_PRINCIPAL = "11111111-1111-4111-8111-111111111111"
# Role name -> role definition GUID: the pack's privileged roles and one narrow role the program grants.
ROLE_IDS = {name: guid for guid, name in PRIVILEGED_ROLES.items()} | {"AcrPull": BuiltInRole.ACR_PULL.value}


def role_assignment(role: str, principal: str, principal_type: str):
    return registration(
        "authorization:RoleAssignment",
        {
            "roleDefinitionId": f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS[role]}",
            "principalId": principal,
            "principalType": principal_type,
            "scope": arm_id("Microsoft.KeyVault/vaults", "kv"),
        },
        name=f"grant-{role.lower()}",
    )


def workload_identity():
    return registration(
        "managedidentity:UserAssignedIdentity",
        {"location": "swedencentral", "tags": TAGS},
        outputs={"principalId": WORKLOAD_PRINCIPAL},
        name="id-app",
    )


def test_narrow_role_for_a_workload_passes():
    assert (
        findings(
            "no-privileged-roles-for-workloads",
            workload_identity(),
            role_assignment("AcrPull", WORKLOAD_PRINCIPAL, "ServicePrincipal"),
        )
        == []
    )


def test_privileged_role_for_a_person_is_not_this_rules_business():
    assert (
        findings("no-privileged-roles-for-workloads", workload_identity(), role_assignment("Owner", "someone", "User"))
        == []
    )


@pytest.mark.parametrize("principal_type", ["ServicePrincipal", None])
def test_contributor_for_a_workload_identity_is_reported(principal_type):
    # Found by principal type, and also by matching the identity's principal id when no type is given.
    found = findings(
        "no-privileged-roles-for-workloads",
        workload_identity(),
        role_assignment("Contributor", WORKLOAD_PRINCIPAL, principal_type),
    )
    assert [v.resource_name for v in found] == ["grant-contributor"]
    assert "grants Contributor to workload identity" in str(found[0])


VAULT_ID = arm_id("Microsoft.KeyVault/vaults", "kv-test")


def vault():
    return registration("keyvault:Vault", VAULT, outputs={**VAULT, "id": VAULT_ID}, name="kv")


ALL_LOGS = [{"categoryGroup": "allLogs", "enabled": True}]
ALL_METRICS = [{"category": "AllMetrics", "enabled": True}]


def diagnostic_setting(props):
    """A setting sending logs and metrics to a workspace, as components/diagnostics.py declares it."""
    return registration(
        "monitor:DiagnosticSetting",
        {
            "workspaceId": arm_id("Microsoft.OperationalInsights/workspaces", "log"),
            "logs": ALL_LOGS,
            "metrics": ALL_METRICS,
            **props,
        },
        name="kv-diagnostics",
    )


def test_service_with_diagnostic_setting_passes():
    assert (
        findings("diagnostic-settings-on-every-service", vault(), diagnostic_setting({"resourceUri": VAULT_ID.upper()}))
        == []
    )


def test_diagnostic_setting_found_by_its_id_as_azure_reports_it():
    setting = diagnostic_setting({"id": f"{VAULT_ID}/providers/Microsoft.Insights/diagnosticSettings/to-log-analytics"})
    assert findings("diagnostic-settings-on-every-service", vault(), setting) == []


def test_service_without_diagnostic_setting_is_reported():
    elsewhere = diagnostic_setting({"resourceUri": arm_id("Microsoft.KeyVault/vaults", "another")})
    found = findings("diagnostic-settings-on-every-service", vault(), elsewhere)
    assert [v.resource_name for v in found] == ["kv"]
    assert "keyvault:Vault kv has no diagnostic setting" in str(found[0])


@pytest.mark.parametrize(
    "signals, says",
    [
        ({"logs": None}, "none sends its logs"),
        ({"logs": [{"categoryGroup": "allLogs", "enabled": False}]}, "none sends its logs"),
        ({"metrics": None}, "none sends its metrics"),
        ({"logs": None, "metrics": None}, "none sends its logs or metrics"),
    ],
)
def test_service_whose_settings_leave_out_a_signal_it_has_is_reported(signals, says):
    found = findings(
        "diagnostic-settings-on-every-service", vault(), diagnostic_setting({"resourceUri": VAULT_ID, **signals})
    )
    assert [v.resource_name for v in found] == ["kv"]
    assert says in str(found[0])


def test_service_without_logs_passes_with_metrics_only():
    plan_id = arm_id("Microsoft.Web/serverfarms", "plan")
    plan = registration(
        "web:AppServicePlan", APP_SERVICE_PLAN, outputs={**APP_SERVICE_PLAN, "id": plan_id}, name="plan"
    )
    metrics_only = diagnostic_setting({"resourceUri": plan_id, "logs": None})
    assert findings("diagnostic-settings-on-every-service", plan, metrics_only) == []


# A web app, the gateway in front of it, and the subnets, routes and firewall of a stack's network edge.
SITE_HOST = "app-test.azurewebsites.net"
VNET_ID = arm_id("Microsoft.Network/virtualNetworks", "vnet")
TABLE_ID = arm_id("Microsoft.Network/routeTables", "rt-app")
FIREWALL_IP = "10.50.6.4"


def web_app(stack: str = "dev", **props):
    site = {**WEB_APP, "tags": {**TAGS, "environment": stack}, "defaultHostName": SITE_HOST, **props}
    return registration("web:WebApp", site, name="chat-site", stack=stack)


def application_gateway(backend: str = SITE_HOST, stack: str = "dev"):
    pools = [{"name": "chat-app", "backendAddresses": [{"fqdn": backend}]}]
    return registration("network:ApplicationGateway", {"backendAddressPools": pools}, name="agw", stack=stack)


def test_a_web_app_behind_a_gateway_with_public_access_off_passes():
    assert (
        findings("webapp-private-behind-gateway", web_app(publicNetworkAccess="Disabled"), application_gateway()) == []
    )


@pytest.mark.parametrize("access", ["Enabled", None])
def test_a_web_app_a_gateway_fronts_but_the_internet_still_reaches_is_reported(access):
    found = findings("webapp-private-behind-gateway", web_app(publicNetworkAccess=access), application_gateway())
    assert [v.resource_name for v in found] == ["chat-site"]
    assert "anyone can go around the WAF" in str(found[0])


def test_a_prod_web_app_without_a_gateway_is_reported_and_a_dev_one_is_not():
    assert findings("webapp-private-behind-gateway", web_app()) == []
    found = findings("webapp-private-behind-gateway", web_app("prod", publicNetworkAccess="Disabled"))
    assert "prod web app chat-site has no application gateway" in str(found[0])
    other_app = application_gateway(backend="another.azurewebsites.net", stack="prod")
    assert findings("webapp-private-behind-gateway", web_app("prod", publicNetworkAccess="Disabled"), other_app)


def edge(route_props: dict | None, *, stack: str = "prod", with_firewall: bool = True, table: bool = True) -> list:
    """A VNet whose app subnet the web app sends from, its route table, one route, and the firewall."""
    subnet = {"name": "snet-app", "addressPrefix": "10.50.0.0/24", "defaultOutboundAccess": False}
    if table:
        subnet["routeTable"] = {"id": TABLE_ID}
    tags = {**TAGS, "environment": stack}
    resources = [
        registration(
            "network:VirtualNetwork",
            {"tags": tags, "subnets": [subnet]},
            outputs={"tags": tags, "subnets": [subnet], "id": VNET_ID},
            name="vnet",
            stack=stack,
        ),
        web_app(stack, virtualNetworkSubnetId=f"{VNET_ID}/subnets/snet-app"),
        registration(
            "network:RouteTable",
            {"routeTableName": "rt-app", "resourceGroupName": "rg-test", "id": TABLE_ID},
            name="rt-app",
            stack=stack,
        ),
    ]
    if route_props is not None:
        route = {"routeTableName": "rt-app", "resourceGroupName": "rg-test", **route_props}
        resources.append(registration("network:Route", route, name="to-firewall", stack=stack))
    if with_firewall:
        configurations = [{"name": "egress", "privateIPAddress": FIREWALL_IP}]
        resources.append(
            registration("network:AzureFirewall", {"ipConfigurations": configurations}, name="afw", stack=stack)
        )
    return resources


TO_FIREWALL = {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": FIREWALL_IP}


def test_an_egress_subnet_routed_to_the_firewall_passes():
    assert findings("egress-subnets-routed-to-firewall", *edge(TO_FIREWALL)) == []


@pytest.mark.parametrize(
    "route, table, says",
    [
        (None, True, "route table rt-app sends no 0.0.0.0/0 to the firewall"),
        ({**TO_FIREWALL, "nextHopIpAddress": "10.50.6.99"}, True, "sends no 0.0.0.0/0 to the firewall"),
        ({**TO_FIREWALL, "nextHopType": "Internet"}, True, "sends no 0.0.0.0/0 to the firewall"),
        (TO_FIREWALL, False, "has no route table, so it egresses around the firewall"),
    ],
)
def test_an_egress_subnet_that_goes_around_the_firewall_is_reported(route, table, says):
    found = findings("egress-subnets-routed-to-firewall", *edge(route, table=table))
    assert [v.resource_name for v in found] == ["vnet"]
    assert says in str(found[0]) and "sent from by web:WebApp chat-site" in str(found[0])


def test_a_prod_stack_without_a_firewall_is_reported_and_a_dev_one_may_use_default_outbound():
    found = findings("egress-subnets-routed-to-firewall", *edge(None, with_firewall=False, table=False))
    assert "this prod stack has no Azure Firewall" in str(found[0])
    assert (
        findings("egress-subnets-routed-to-firewall", *edge(None, stack="dev", with_firewall=False, table=False)) == []
    )


# -------------------------------------------------------------------------------------------------
# The pack as a whole
# -------------------------------------------------------------------------------------------------


def test_every_rule_has_a_case_or_a_stack_test():
    covered = {case.rule for case in CASES} | set(STACK_RULES)
    assert {p.name for p in POLICIES} == covered


def test_every_rule_explains_itself_and_says_how_to_fix_it():
    for policy in POLICIES:
        assert len(policy.description) > 40, policy.name
        assert policy.remediation_steps and len(policy.remediation_steps) > 20, policy.name


def test_the_issues_baseline_is_mandatory_and_cost_hygiene_is_advisory():
    advisory = {p.name for p in POLICIES if not is_mandatory(p)}
    assert advisory == {"required-tags", "allowed-skus-per-environment"}


def test_unknown_rule_name_is_a_clear_error():
    with pytest.raises(KeyError, match="no rule named 'nope'"):
        policy_named("nope")
