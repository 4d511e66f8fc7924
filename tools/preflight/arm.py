"""Read-only calls to Azure Resource Manager: which endpoint, how the clients are built, what is read.

Every read returns plain objects (tools/preflight/facts.py), and every failure becomes an ArmReadError
naming what could not be read.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline import policies
from azure.core.rest import HttpRequest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tools.preflight.facts import Deployment, OfferedModel, OfferedSku, Permission, SoftDeleted, Usage

ARM_ENDPOINT_VARIABLE = "AICHAT_ARM_ENDPOINT"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
# Tokens are always for Azure Resource Manager, whichever endpoint the calls go to.
ARM_SCOPE = "https://management.azure.com/.default"
# Plain http is only for a local stand-in of ARM (the tests): a bearer token never leaves the machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
# A couple of retries ride out throttling; the SDK default (10, with back-off) would stall a CI job for minutes.
RETRIES = 2
# The subscription-level permissions call has no SDK method; this is the version the SDK uses per resource group.
PERMISSIONS_API_VERSION = "2022-04-01"
# The account kind components/openai.py creates; the models list also answers for other kinds (AIServices).
OPENAI_KIND = "OpenAI"


class EndpointRefused(ValueError):
    """The configured ARM endpoint would send a bearer token in clear text to another machine."""


def resolve_endpoint(configured: str | None = None) -> str:
    """The ARM endpoint: `configured`, else $AICHAT_ARM_ENDPOINT, else the public cloud's."""
    endpoint = (configured or os.environ.get(ARM_ENDPOINT_VARIABLE) or DEFAULT_ARM_ENDPOINT).rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return endpoint
    raise EndpointRefused(
        f"{ARM_ENDPOINT_VARIABLE}={endpoint!r}: only https, or plain http to {' or '.join(LOOPBACK_HOSTS)} "
        "(a local stand-in), may carry the deployer's token"
    )


class AllowHttpToLoopback(policies.SansIOHTTPPolicy):
    """Lets the bearer-token policy run over plain http (it refuses by default); added for loopback only."""

    def on_request(self, request):
        request.context["enforce_https"] = False


def read_only_policies(credential: TokenCredential, endpoint: str) -> list[Any]:
    """The management clients' default pipeline without ARMAutoResourceProviderRegistrationPolicy.

    On a 409 MissingSubscriptionRegistration that policy registers the provider (a write to the
    subscription) and then waits for it; the preflight reports an unregistered provider instead.
    """
    allow_http = [AllowHttpToLoopback()] if urlsplit(endpoint).scheme == "http" else []
    return [
        policies.RequestIdPolicy(),
        policies.HeadersPolicy(),
        policies.UserAgentPolicy(user_agent="aichat-preflight"),
        policies.ProxyPolicy(),
        policies.ContentDecodePolicy(),
        *allow_http,
        policies.RedirectPolicy(),
        policies.RetryPolicy(retry_total=RETRIES),
        ARMChallengeAuthenticationPolicy(credential, ARM_SCOPE),
        policies.CustomHookPolicy(),
        policies.NetworkTraceLoggingPolicy(),
        policies.DistributedTracingPolicy(),
        policies.SensitiveHeaderCleanupPolicy(),
        ARMHttpLoggingPolicy(),
    ]


class ArmReadError(Exception):
    """A read the preflight needed failed. `what` names it in words the deployer can act on."""

    def __init__(self, what: str, error: AzureError):
        self.what = what
        self.status: int | None = getattr(error, "status_code", None)
        self.code: str | None = getattr(getattr(error, "error", None), "code", None)
        self.message = (getattr(error, "message", None) or str(error)).splitlines()[0]
        super().__init__(f"could not read {what}: {self.reason}")

    @property
    def denied(self) -> bool:
        return self.status in (401, 403)

    @property
    def reason(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status} {self.code or ''}".rstrip()


T = TypeVar("T")


def reading(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except AzureError as error:
        raise ArmReadError(what, error) from error


def _date(value: datetime.datetime | str | None) -> datetime.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.date()


def _segment(resource_id: str, name: str) -> str | None:
    """The value after `/name/` in a resource id (`locations`, `resourceGroups`), case-insensitively."""
    match = re.search(rf"/{name}/([^/]+)", resource_id or "", re.IGNORECASE)
    return match.group(1) if match else None


def _offered_model(entry: Any) -> OfferedModel:
    model = entry.model
    return OfferedModel(
        name=model.name,
        version=model.version,
        lifecycle=model.lifecycle_status or "",
        inference_ends=_date(model.deprecation.inference) if model.deprecation else None,
        skus=tuple(OfferedSku(sku.name, sku.usage_name or "", _date(sku.deprecation_date)) for sku in model.skus or ()),
    )


def _permissions(entries: Iterable[Any]) -> list[Permission]:
    return [Permission(tuple(e.actions or ()), tuple(e.not_actions or ())) for e in entries]


# ------------------------------------------------------------------------------------------------
# The reads
# ------------------------------------------------------------------------------------------------


class Arm:
    """Read-only views of one subscription through Azure Resource Manager."""

    def __init__(self, credential: TokenCredential, subscription_id: str, endpoint: str):
        self.subscription_id = subscription_id

        def connect(client_class):
            return client_class(
                credential,
                subscription_id,
                base_url=endpoint,
                policies=read_only_policies(credential, endpoint),
            )

        self._cognitive = connect(CognitiveServicesManagementClient)
        self._key_vault = connect(KeyVaultManagementClient)
        self._api_management = connect(ApiManagementClient)
        self._resources = connect(ResourceManagementClient)
        self._authorization = connect(AuthorizationManagementClient)
        self._models: dict[str, list[OfferedModel]] = {}  # region -> models (two checks read them)

    def registration_states(self) -> dict[str, str]:
        """Resource provider namespace -> registrationState, for every provider ARM knows."""
        return reading(
            "the subscription's resource providers",
            lambda: {p.namespace.lower(): p.registration_state for p in self._resources.providers.list()},
        )

    def openai_models(self, region: str) -> list[OfferedModel]:
        """The model versions an OpenAI account in `region` may deploy, with their SKUs."""
        if region not in self._models:
            entries = reading(f"the models offered in {region}", lambda: list(self._cognitive.models.list(region)))
            self._models[region] = [
                _offered_model(entry) for entry in entries if (entry.kind or "").lower() == OPENAI_KIND.lower()
            ]
        return self._models[region]

    def usages(self, region: str) -> list[Usage]:
        return reading(
            f"the Cognitive Services quota usages in {region}",
            lambda: [
                Usage(u.name.value, u.current_value or 0, u.limit or 0) for u in self._cognitive.usages.list(region)
            ],
        )

    def deployments(self, resource_group: str, account: str) -> list[Deployment]:
        return reading(
            f"the model deployments of {account}",
            lambda: [
                Deployment(d.properties.model.name, d.sku.name, d.sku.capacity or 0)
                for d in self._cognitive.deployments.list(resource_group, account)
                if d.sku and d.properties and d.properties.model
            ],
        )

    def deleted_key_vaults(self) -> list[SoftDeleted]:
        def read():
            return [
                SoftDeleted(
                    kind="Key Vault",
                    name=v.name,
                    location=v.properties.location,
                    resource_group=_segment(v.properties.vault_id, "resourceGroups"),
                    purge_date=_date(v.properties.scheduled_purge_date),
                    purge_protected=bool(v.properties.purge_protection_enabled),
                )
                for v in self._key_vault.vaults.list_deleted()
            ]

        return reading("the subscription's soft-deleted Key Vaults", read)

    def deleted_openai_accounts(self) -> list[SoftDeleted]:
        # The id of a deleted account holds what a purge needs: .../locations/L/resourceGroups/G/deletedAccounts/N
        def read():
            return [
                SoftDeleted(
                    kind="OpenAI account",
                    name=a.name,
                    location=_segment(a.id, "locations") or a.location,
                    resource_group=_segment(a.id, "resourceGroups"),
                    purge_date=_date(a.properties.scheduled_purge_date if a.properties else None),
                )
                for a in self._cognitive.deleted_accounts.list()
                if (a.kind or "").lower() == OPENAI_KIND.lower()
            ]

        return reading("the subscription's soft-deleted Cognitive Services accounts", read)

    def deleted_api_management_services(self) -> list[SoftDeleted]:
        # `location` is a display name ("Sweden Central"); the id has the name a purge takes.
        def read():
            return [
                SoftDeleted(
                    kind="API Management service",
                    name=s.name,
                    location=_segment(s.id, "locations") or s.location,
                    resource_group=_segment(s.service_id, "resourceGroups"),
                    purge_date=_date(s.scheduled_purge_date),
                )
                for s in self._api_management.deleted_services.list_by_subscription()
            ]

        return reading("the subscription's soft-deleted API Management services", read)

    def permissions_on_resource_group(self, resource_group: str) -> list[Permission]:
        return reading(
            f"the deployer's permissions on resource group {resource_group}",
            lambda: _permissions(self._authorization.permissions.list_for_resource_group(resource_group)),
        )

    def permissions_on_subscription(self) -> list[Permission]:
        """No SDK method serves this scope; ARM does (the resource group call's sibling)."""

        def read():
            url = f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/permissions"
            params = {"api-version": PERMISSIONS_API_VERSION}
            entries = []
            while url:
                response = self._resources.send_request(HttpRequest("GET", url, params=params))
                response.raise_for_status()
                body = response.json()
                entries += body.get("value", [])
                url, params = body.get("nextLink"), None  # a next link carries its own query
            return [Permission(tuple(e.get("actions", ())), tuple(e.get("notActions", ()))) for e in entries]

        return reading(f"the deployer's permissions on subscription {self.subscription_id}", read)
