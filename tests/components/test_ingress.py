"""Ingress: prod's web app sits behind Application Gateway WAF_v2 and is private; dev's takes internet traffic itself."""

from __future__ import annotations

import pytest

from components.app_service import GATEWAY_HOST_HEADER
from components.ingress import MANAGED_RULE_SETS, SSL_POLICY, certificate_secret_name
from components.roles import BuiltInRole

GATEWAY = "azure-native:network:ApplicationGateway"
WAF_POLICY = "azure-native:network:WebApplicationFirewallPolicy"


def gateway(program):
    return program.one(GATEWAY)


def gateway_settings(program) -> dict:
    return program.config["aichat:ingress"]["applicationGateway"]


def named(items: list[dict], name: str) -> dict:
    return next(item for item in items if item["name"] == name)


def part_name(reference: dict) -> str:
    """`{"id": ".../applicationGateways/agw/probes/x"}` -> `x`: which part of the gateway a part points at."""
    return reference["id"].rsplit("/", 1)[-1]


def site(program):
    return program.one("azure-native:web:WebApp")


def test_prod_declares_a_zone_redundant_waf_v2_gateway_scaled_as_configured(prod):
    inputs = gateway(prod).inputs
    settings = gateway_settings(prod)
    assert inputs["sku"] == {"name": "WAF_v2", "tier": "WAF_v2"}
    assert inputs["zones"] == settings["zones"] and len(inputs["zones"]) >= 2
    assert inputs["autoscaleConfiguration"] == {
        "minCapacity": settings["minCapacity"],
        "maxCapacity": settings["maxCapacity"],
    }
    assert inputs["gatewayIPConfigurations"][0]["subnet"]["id"].endswith("/subnets/snet-agw")


def test_the_waf_policy_runs_microsofts_default_and_bot_rule_sets_in_prevention(prod):
    policy = prod.one(WAF_POLICY)
    assert gateway(prod).inputs["firewallPolicy"]["id"] == policy.id
    rule_sets = {(s["ruleSetType"], s["ruleSetVersion"]) for s in policy.inputs["managedRules"]["managedRuleSets"]}
    assert (
        rule_sets
        == set(MANAGED_RULE_SETS)
        == {("Microsoft_DefaultRuleSet", "2.1"), ("Microsoft_BotManagerRuleSet", "1.1")}
    )
    assert policy.inputs["policySettings"]["state"] == "Enabled"
    assert policy.inputs["policySettings"]["mode"] == "Prevention" == gateway_settings(prod)["wafMode"]
    assert policy.inputs["policySettings"]["requestBodyCheck"] is True


def test_the_public_ip_is_standard_static_and_zone_redundant(prod):
    address = prod.one("azure-native:network:PublicIPAddress", "ingress-ip")
    frontend = gateway(prod).inputs["frontendIPConfigurations"][0]
    assert frontend["publicIPAddress"]["id"] == address.id
    assert address.inputs["sku"]["name"] == "Standard" and address.inputs["publicIPAllocationMethod"] == "Static"
    assert address.inputs["zones"] == gateway_settings(prod)["zones"]
    assert prod.outputs["ingressPublicIp"] == address.outputs["ipAddress"]
    assert prod.outputs["ingressFqdn"] == address.outputs["dnsSettings"]["fqdn"]


def test_the_https_listener_serves_the_host_name_with_the_certificate_from_key_vault(prod):
    inputs = gateway(prod).inputs
    settings = gateway_settings(prod)
    https = next(listener for listener in inputs["httpListeners"] if listener["protocol"] == "Https")
    assert https["hostName"] == settings["hostName"] and https["requireServerNameIndication"] is True
    certificate = named(inputs["sslCertificates"], part_name(https["sslCertificate"]))
    assert certificate == {"name": certificate["name"], "keyVaultSecretId": settings["certificateSecretId"]}
    assert inputs["sslPolicy"] == {"policyType": "Predefined", "policyName": SSL_POLICY}
    assert prod.outputs["appUrl"] == f"https://{settings['hostName']}"


def test_plain_http_only_redirects_to_https(prod):
    inputs = gateway(prod).inputs
    http = next(listener for listener in inputs["httpListeners"] if listener["protocol"] == "Http")
    rule = next(r for r in inputs["requestRoutingRules"] if part_name(r["httpListener"]) == http["name"])
    assert "backendAddressPool" not in rule
    redirect = named(inputs["redirectConfigurations"], part_name(rule["redirectConfiguration"]))
    https = next(listener for listener in inputs["httpListeners"] if listener["protocol"] == "Https")
    assert redirect["redirectType"] == "Permanent" and part_name(redirect["targetListener"]) == https["name"]


def test_the_gateway_reads_the_certificate_with_its_own_identity_granted_that_secret_only(prod):
    identity = prod.one("azure-native:managedidentity:UserAssignedIdentity", "ingress-identity")
    vault = prod.one("azure-native:keyvault:Vault")
    assert gateway(prod).inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
    grants = [g for g in prod.role_grants() if g.principal_id == identity.outputs["principalId"]]
    assert [(g.role_id, g.scope) for g in grants] == [
        (BuiltInRole.KEY_VAULT_SECRETS_USER.value, f"{vault.id}/secrets/chat-tls")
    ]


def test_the_gateway_starts_after_its_grant_and_the_private_dns_it_resolves_vault_and_app_through(prod):
    depends_on = set(gateway(prod).depends_on)
    needed = [
        prod.one("azure-native:authorization:RoleAssignment", "ingress-certificate-reader"),
        prod.one("azure-native:network:PrivateEndpoint", "keyvault-vault-pe"),
        prod.one("azure-native:network:PrivateDnsZoneGroup", "keyvault-vault-dns"),
        prod.one("azure-native:network:PrivateEndpoint", "chat-site-pe"),
        prod.one("azure-native:network:PrivateDnsZoneGroup", "chat-site-dns"),
    ]
    assert {r.urn for r in needed} <= depends_on


def test_the_backend_is_the_web_app_through_its_private_endpoint_by_the_host_name_it_expects(prod):
    inputs = gateway(prod).inputs
    rule = next(r for r in inputs["requestRoutingRules"] if "backendAddressPool" in r)
    pool = named(inputs["backendAddressPools"], part_name(rule["backendAddressPool"]))
    assert pool["backendAddresses"] == [{"fqdn": site(prod).outputs["defaultHostName"]}]
    settings = named(inputs["backendHttpSettingsCollection"], part_name(rule["backendHttpSettings"]))
    assert (settings["protocol"], settings["port"], settings["pickHostNameFromBackendAddress"]) == ("Https", 443, True)
    # That host name resolves, inside the VNet, to the site's private endpoint (group `sites`).
    endpoint = prod.one("azure-native:network:PrivateEndpoint", "chat-site-pe")
    connection = endpoint.inputs["privateLinkServiceConnections"][0]
    assert connection["privateLinkServiceId"] == site(prod).id and connection["groupIds"] == ["sites"]
    assert endpoint.inputs["subnet"]["id"].endswith("/subnets/snet-private-endpoints")
    zones = prod.one("azure-native:network:PrivateDnsZoneGroup", "chat-site-dns").inputs["privateDnsZoneConfigs"]
    zone = prod.one("azure-native:privatedns:PrivateZone", "dns-azurewebsites-net")
    assert [z["privateDnsZoneId"] for z in zones] == [zone.id]
    assert zone.inputs["privateZoneName"] == "privatelink.azurewebsites.net"


def test_the_health_probe_asks_the_apps_health_path_and_wants_a_200(prod):
    inputs = gateway(prod).inputs
    settings = inputs["backendHttpSettingsCollection"][0]
    probe = named(inputs["probes"], part_name(settings["probe"]))
    assert probe["path"] == prod.config["aichat:appService"]["healthCheckPath"]
    assert probe["pickHostNameFromBackendHttpSettings"] is True and probe["protocol"] == "Https"
    assert probe["match"] == {"statusCodes": ["200"]}


def test_behind_the_gateway_the_web_app_and_its_scm_site_refuse_public_traffic(prod):
    inputs = site(prod).inputs
    assert inputs["publicNetworkAccess"] == inputs["siteConfig"]["publicNetworkAccess"] == "Disabled"
    assert inputs["siteConfig"]["ipSecurityRestrictionsDefaultAction"] == "Deny"
    assert inputs["siteConfig"]["scmIpSecurityRestrictionsDefaultAction"] == "Deny"
    assert inputs["clientAffinityProxyEnabled"] is True


def test_behind_the_gateway_sign_in_redirects_use_the_host_the_user_opened(prod):
    auth = prod.one("azure-native:web:WebAppAuthSettingsV2").inputs
    assert auth["httpSettings"]["forwardProxy"] == {
        "convention": "Custom",
        "customHostHeaderName": GATEWAY_HOST_HEADER,
        "customProtoHeaderName": "X-Forwarded-Proto",
    }
    assert GATEWAY_HOST_HEADER == "X-Original-Host"  # what Application Gateway sends
    # The probe carries no sign-in, so the health path is the one path left open.
    assert auth["globalValidation"]["excludedPaths"] == [prod.config["aichat:appService"]["healthCheckPath"]]
    assert auth["globalValidation"]["requireAuthentication"] is True


def test_the_gateway_sends_its_access_performance_and_waf_logs_to_the_workspace(prod):
    setting = prod.one("azure-native:monitor:DiagnosticSetting", "ingress-diagnostics")
    assert setting.inputs["resourceUri"] == gateway(prod).id
    assert setting.inputs["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]
    assert setting.inputs["workspaceId"] == prod.one("azure-native:operationalinsights:Workspace").id


def test_dev_keeps_the_public_web_app_and_no_gateway(dev):
    assert dev.of_type(GATEWAY) == [] and dev.of_type(WAF_POLICY) == []
    inputs = site(dev).inputs
    assert "publicNetworkAccess" not in inputs
    assert dev.outputs["appUrl"] == f"https://{site(dev).outputs['defaultHostName']}"
    assert "ingressPublicIp" not in dev.outputs
    auth = dev.one("azure-native:web:WebAppAuthSettingsV2").inputs
    assert "forwardProxy" not in auth["httpSettings"] and "excludedPaths" not in auth["globalValidation"]


@pytest.mark.parametrize(
    "secret_id", ["https://kv.vault.azure.net/secrets/chat-tls", "https://kv.vault.azure.net/secrets/chat-tls/"]
)
def test_the_certificate_grant_is_scoped_to_the_secret_the_id_names(secret_id):
    assert certificate_secret_name(secret_id) == "chat-tls"


@pytest.mark.parametrize("mode", ["public", "applicationGateway"])
def test_the_ingress_component_alone_declares_a_gateway_only_in_applicationgateway_mode(declare, mode):
    from components.config import IngressConfig
    from components.ingress import Ingress, IngressArgs

    def build(context, config):
        settings = config.ingress if mode == "applicationGateway" else IngressConfig(mode="public")
        Ingress(
            "in",
            IngressArgs(
                context,
                settings,
                "rg",
                workspace_id="workspace",
                app_url="https://app.azurewebsites.net",
                backend_host_name="app.azurewebsites.net",
                health_check_path="/healthz",
                subnet_id="subnet-id",
                key_vault_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            ),
        )

    run = declare(build, stack="prod")
    component = run.one("aichat:network:Ingress")
    children = [r for r in run.resources if r.parent == component.urn]
    assert bool(run.of_type(GATEWAY)) == (mode == "applicationGateway")
    assert all(r.parent == component.urn for r in run.resources if r.type.startswith("azure-native:"))
    assert (children == []) == (mode == "public")


def test_streamed_answers_are_not_held_back_by_the_gateway(prod):
    gateway = prod.one("azure-native:network:ApplicationGateway").inputs
    assert gateway["globalConfiguration"] == {"enableRequestBuffering": True, "enableResponseBuffering": False}


def test_the_waf_accepts_every_body_the_app_accepts(prod):
    from apps.chat.settings import Settings

    policy = prod.one("azure-native:network:WebApplicationFirewallPolicy").inputs["policySettings"]
    assert policy["maxRequestBodySizeInKb"] * 1024 >= Settings().max_request_bytes
