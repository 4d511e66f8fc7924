"""Hand-made resources for rule tests: a compliant example per type, and one-setting changes of it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tools.offline import Registration

SUBSCRIPTION = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-test/providers"
TAGS = {"workload": "enterprise-ai-chat", "environment": "dev", "owner": "platform-team"}
_REMOVE = object()


def registration(
    type_: str,
    props: Mapping[str, Any],
    *,
    name: str = "example",
    stack: str = "dev",
    protect: bool = False,
    parent: str = "",
    outputs: Mapping[str, Any] | None = None,
) -> Registration:
    """A resource as `tools.offline` records it; `type_` is the short form, e.g. `keyvault:Vault`."""
    full_type = f"azure-native:{type_}"
    return Registration(
        urn=f"urn:pulumi:{stack}::aichat::{full_type}::{name}",
        type=full_type,
        name=name,
        inputs=dict(props),
        outputs=dict(props if outputs is None else outputs),
        parent=parent,
        custom=True,
        protect=protect,
        depends_on=(),
        custom_timeouts={},
    )


def changed(props: Mapping[str, Any], path: str, value: Any = _REMOVE) -> dict[str, Any]:
    """A deep copy of `props` with the dotted `path` set to `value` (removed when no value is given)."""
    result = copy.deepcopy(dict(props))
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node.setdefault(key, {})
    if value is _REMOVE:
        node.pop(last, None)
    else:
        node[last] = value
    return result


def arm_id(kind: str, name: str) -> str:
    return f"{SUBSCRIPTION}/{kind}/{name}"


# Compliant examples, as the program builds them (wire format: camelCase keys).
VAULT = {
    "location": "swedencentral",
    "tags": TAGS,
    "properties": {
        "sku": {"family": "A", "name": "standard"},
        "enableRbacAuthorization": True,
        "enableSoftDelete": True,
        "enablePurgeProtection": True,
        "publicNetworkAccess": "Disabled",
        "networkAcls": {"defaultAction": "Deny", "bypass": "None"},
    },
}
REGISTRY = {
    "location": "swedencentral",
    "tags": TAGS,
    "sku": {"name": "Premium"},
    "adminUserEnabled": False,
    "anonymousPullEnabled": False,
    "publicNetworkAccess": "Disabled",
    "networkRuleSet": {"defaultAction": "Deny", "ipRules": []},
    "policies": {"exportPolicy": {"status": "disabled"}},
}
POSTGRES_SERVER = {
    "location": "swedencentral",
    "tags": TAGS,
    "sku": {"name": "Standard_B1ms", "tier": "Burstable"},
    "network": {"publicNetworkAccess": "Disabled"},
    "authConfig": {"activeDirectoryAuth": "Enabled", "passwordAuth": "Disabled", "tenantId": "t"},
}
POSTGRES_TLS_PARAMETER = {"configurationName": "require_secure_transport", "value": "ON", "source": "user-override"}
OPENAI_ACCOUNT = {
    "location": "swedencentral",
    "tags": TAGS,
    "kind": "OpenAI",
    "sku": {"name": "S0"},
    "properties": {
        "publicNetworkAccess": "Disabled",
        "disableLocalAuth": True,
        "networkAcls": {"defaultAction": "Deny", "bypass": "None"},
    },
}
MODEL_DEPLOYMENT_PROD = {
    "accountName": "oai-test",
    "sku": {"name": "DataZoneStandard", "capacity": 100},
    "properties": {
        "model": {"format": "OpenAI", "name": "gpt-5.4-mini", "version": "2026-03-17"},
        "versionUpgradeOption": "NoAutoUpgrade",
    },
}
WEB_APP = {
    "location": "swedencentral",
    "tags": TAGS,
    "name": "app-test",
    "httpsOnly": True,
    "identity": {
        "type": "UserAssigned",
        "userAssignedIdentities": [arm_id("Microsoft.ManagedIdentity/userAssignedIdentities", "id-app")],
    },
    "siteConfig": {
        "linuxFxVersion": "DOCKER|cr.azurecr.io/chat:1",
        "acrUseManagedIdentityCreds": True,
        "acrUserManagedIdentityID": "client-id",
        "minTlsVersion": "1.2",
        "scmMinTlsVersion": "1.2",
        "ftpsState": "Disabled",
        "appSettings": [{"name": "WEBSITES_PORT", "value": "8000"}],
    },
}
BASIC_AUTH_OFF = {"name": "app-test", "resourceGroupName": "rg-test", "allow": False}
APIM = {
    "location": "swedencentral",
    "tags": TAGS,
    "sku": {"name": "Developer", "capacity": 1},
    "virtualNetworkType": "Internal",
    "identity": {"type": "SystemAssigned"},
}
APP_SERVICE_PLAN = {"location": "swedencentral", "tags": TAGS, "sku": {"name": "P1v3", "capacity": 1}}
PROD_TAGS = {**TAGS, "environment": "prod"}
WAF_POLICY_PROD = {
    "location": "swedencentral",
    "tags": PROD_TAGS,
    "policySettings": {"state": "Enabled", "mode": "Prevention", "requestBodyCheck": True},
    "managedRules": {"managedRuleSets": [{"ruleSetType": "Microsoft_DefaultRuleSet", "ruleSetVersion": "2.1"}]},
}
VNET_PROD = {
    "location": "swedencentral",
    "tags": PROD_TAGS,
    "addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
    "subnets": [
        {"name": "snet-app", "addressPrefix": "10.50.0.0/24", "defaultOutboundAccess": False},
        {"name": "AzureFirewallSubnet", "addressPrefix": "10.50.6.0/26", "defaultOutboundAccess": False},
    ],
}
