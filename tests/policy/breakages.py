"""Real ways to break the security baseline in the program, for the compliance and plan tests.

Each breakage changes the program the way a careless edit would - a stack config value, or one
argument of one resource constructor in one component - and names the rule that must catch it and
the resource that rule must name.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest

from policy.rules.stack_wide import PRIVILEGED_ROLES
from tools.offline import stack_config_values


def _set_path(target: Any, path: str, value: Any) -> None:
    """Set a dotted snake_case path inside Pulumi args objects (input types or ResourceOptions); a number steps
    into a list (`subnets.0.default_outbound_access`)."""
    *parents, last = path.split(".")
    for name in parents:
        if name.isdigit():
            target = target[int(name)]
        else:
            target = getattr(target, name) if isinstance(target, pulumi.ResourceOptions) else pulumi.get(target, name)
    if isinstance(target, pulumi.ResourceOptions):
        setattr(target, last, value)
    else:
        pulumi.set(target, last, value)


def override_resource_args(monkeypatch: pytest.MonkeyPatch, module: str, resource: str, **settings: Any) -> None:
    """Make `<module>.<resource>(...)` (as one component calls it) receive `settings` instead of its own values.

    Keys are keyword arguments; a `__` in a key is a dotted path into nested args,
    e.g. `properties__enable_purge_protection=False`, `opts__protect=False` or `subnets__0__name="x"`.
    """
    component = importlib.import_module(module)
    sdk_module_name, class_name = resource.rsplit(".", 1)
    sdk_module = getattr(component, sdk_module_name)
    original = getattr(sdk_module, class_name)

    class Broken(original):  # type: ignore[misc, valid-type]
        def __init__(self, resource_name: str, *args: Any, **kwargs: Any):
            for key, value in settings.items():
                top, _, rest = key.partition("__")
                if rest:
                    # A copy (of each item too, for a list), so the change stays in this one resource.
                    original_value = kwargs[top]
                    is_list = isinstance(original_value, list)
                    kwargs[top] = [copy.copy(v) for v in original_value] if is_list else copy.copy(original_value)
                    _set_path(kwargs[top], rest.replace("__", "."), value)
                else:
                    kwargs[top] = value
            super().__init__(resource_name, *args, **kwargs)

    monkeypatch.setattr(sdk_module, class_name, Broken)


@dataclass(frozen=True)
class Breakage:
    """A change to the program, the rule that must catch it, and the resource the finding must name."""

    id: str
    stack: str
    rule: str
    resource: str
    patch: Callable[[pytest.MonkeyPatch], None] = lambda monkeypatch: None
    config: Callable[[dict[str, Any]], None] = lambda values: None
    notes: dict[str, str] = field(default_factory=dict)

    def stack_values(self) -> dict[str, Any]:
        values = copy.deepcopy(stack_config_values(self.stack))
        self.config(values)
        return values


CONTRIBUTOR = next(guid for guid, name in PRIVILEGED_ROLES.items() if name == "Contributor")


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def _placeholder(name: str, *_args: Any, **_kwargs: Any) -> pulumi.Resource:
    """Stands in for a resource the breakage leaves out, where others still depend on it (it is no Azure resource)."""
    return pulumi.ComponentResource("test:breakage:LeftOut", name)


def _build_agent_ranges(values: dict[str, Any]) -> None:
    values["aichat:registry"]["buildAgentIpRanges"] = ["203.0.113.0/24"]


BREAKAGES = [
    Breakage(
        "registry-opened-for-build-agents",
        "dev",
        "registry-no-public-network-access",
        "registry-registry",
        config=_build_agent_ranges,
    ),
    Breakage(
        "key-vault-purge-protection-off",
        "dev",
        "keyvault-soft-delete-and-purge-protection",
        "keyvault-vault",
        patch=lambda mp: override_resource_args(
            mp, "components.key_vault", "keyvault.Vault", properties__enable_purge_protection=False
        ),
    ),
    Breakage(
        "key-vault-unprotected-in-prod",
        "prod",
        "stateful-resources-protected-in-prod",
        "keyvault-vault",
        patch=lambda mp: override_resource_args(mp, "components.key_vault", "keyvault.Vault", opts__protect=False),
    ),
    Breakage(
        "registry-admin-user-on",
        "prod",
        "registry-no-admin-user-or-anonymous-pull",
        "registry-registry",
        patch=lambda mp: override_resource_args(
            mp, "components.registry", "containerregistry.Registry", admin_user_enabled=True
        ),
    ),
    Breakage(
        "postgres-password-auth-on",
        "dev",
        "postgres-entra-only-auth",
        "postgres-server",
        patch=lambda mp: override_resource_args(
            mp, "components.postgres", "dbforpostgresql.Server", auth_config__password_auth="Enabled"
        ),
    ),
    Breakage(
        "postgres-tls-off",
        "prod",
        "postgres-tls-required",
        "postgres-require-secure-transport",
        patch=lambda mp: mp.setitem(
            importlib.import_module("components.postgres").SERVER_PARAMETERS, "require_secure_transport", "OFF"
        ),
    ),
    Breakage(
        "web-app-plain-http",
        "dev",
        "webapp-https-only",
        "chat-site",
        patch=lambda mp: override_resource_args(mp, "components.app_service", "web.WebApp", https_only=False),
    ),
    Breakage(
        "web-app-tls-1-0",
        "prod",
        "webapp-min-tls-1-2",
        "chat-site",
        patch=lambda mp: override_resource_args(
            mp, "components.app_service", "web.WebApp", site_config__min_tls_version="1.0"
        ),
    ),
    Breakage(
        "scm-basic-auth-on",
        "dev",
        "webapp-basic-publishing-credentials-disabled",
        "chat-scm-basic-auth",
        patch=lambda mp: override_resource_args(mp, "components.app_service", "web.WebAppScmAllowed", allow=True),
    ),
    Breakage(
        "private-endpoint-without-dns",
        "dev",
        "private-endpoint-dns-zone-group",
        "keyvault-vault-pe",
        patch=lambda mp: mp.setattr(
            importlib.import_module("components.private_endpoint").network, "PrivateDnsZoneGroup", _placeholder
        ),
    ),
    Breakage(
        "web-app-without-diagnostics",
        "prod",
        "diagnostic-settings-on-every-service",
        "chat-site",
        patch=lambda mp: mp.setattr(importlib.import_module("components.app_service"), "send_to_workspace", _nothing),
    ),
    Breakage(
        "waf-detecting-in-prod",
        "prod",
        "waf-prevention-in-prod",
        "ingress-waf",
        patch=lambda mp: override_resource_args(
            mp, "components.ingress", "network.WebApplicationFirewallPolicy", policy_settings__mode="Detection"
        ),
    ),
    Breakage(
        "web-app-public-behind-the-gateway",
        "prod",
        "webapp-private-behind-gateway",
        "chat-site",
        patch=lambda mp: override_resource_args(
            mp, "components.app_service", "web.WebApp", public_network_access="Enabled"
        ),
    ),
    Breakage(
        "egress-routes-left-out",
        "prod",
        "egress-subnets-routed-to-firewall",
        "network-vnet",
        patch=lambda mp: mp.setattr(importlib.import_module("components.egress").network, "Route", _placeholder),
    ),
    Breakage(
        "subnet-with-default-outbound-access-in-prod",
        "prod",
        "default-outbound-access-off-in-prod",
        "network-vnet",
        patch=lambda mp: override_resource_args(
            mp, "components.network", "network.VirtualNetwork", subnets__0__default_outbound_access=None
        ),
    ),
    Breakage(
        "workload-granted-contributor",
        "dev",
        "no-privileged-roles-for-workloads",
        "registry-app-acrpull",
        patch=lambda mp: mp.setattr(
            importlib.import_module("components.roles"),
            "role_definition_id",
            lambda scope, role: f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}",
        ),
    ),
]
