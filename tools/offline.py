"""Evaluate the Pulumi program for a stack with no cloud and no Pulumi CLI.

The program runs for real; only the engine is replaced by Pulumi's mocks. Every resource it registers
is recorded with its inputs (as the provider would receive them: camelCase keys), the outputs the mock
gives back, and the options a reviewer cares about (parent, protect, dependencies, timeouts).

Used by the tests (tests/conftest.py), the offline plan (`python -m tools.plan`) and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import runpy
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "aichat"

# What the mocked `azure-native:authorization:getClientConfig` answers.
FAKE_SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
FAKE_TENANT_ID = "00000000-0000-4000-8000-0000000000aa"
_MOCK_NAMESPACE = uuid.UUID("0f7c3f7e-0b5a-4f0e-9d7c-1b7d8a6f2c10")


@dataclass(frozen=True)
class Registration:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    parent: str
    custom: bool
    protect: bool
    depends_on: tuple[str, ...]
    custom_timeouts: Mapping[str, str]
    alias_types: tuple[str, ...] = ()  # the types this resource may have had before (from its aliases)

    @property
    def id(self) -> str | None:
        return self.outputs.get("id")


@dataclass(frozen=True)
class RoleGrant:
    """A role assignment the program registered: the role definition's GUID, its scope and who holds it."""

    role_id: str
    scope: str
    principal_id: str


class ProgramError(Exception):
    """The program raised; `resources` are what it had registered by then (config errors: none)."""

    def __init__(self, cause: BaseException, resources: list[Registration]):
        super().__init__(str(cause))
        self.resources = resources


@dataclass
class ProgramRun:
    """Everything one evaluation of the program produced."""

    stack: str
    resources: list[Registration]
    outputs: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_config(self):
        """The validated StackConfig the program ran with (typed, unlike `config`)."""
        from components.config import parse_stack_config, project_keys

        return parse_stack_config(project_keys(self.config), self.stack)

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Registration:
        matches = [r for r in self.of_type(type_token) if name is None or r.name == name]
        if len(matches) != 1:
            raise AssertionError(f"expected one {type_token} {name or ''}, found {[r.name for r in matches]}")
        return matches[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def by_id(self, resource_id: str) -> Registration:
        return next(r for r in self.resources if r.id == resource_id)

    def role_grants(self) -> list[RoleGrant]:
        return [
            RoleGrant(r.inputs["roleDefinitionId"].rsplit("/", 1)[1], r.inputs["scope"], r.inputs["principalId"])
            for r in self.of_type("azure-native:authorization:RoleAssignment")
        ]


# ------------------------------------------------------------------------------------------------
# Outputs the cloud would compute. Keyed by type token; each returns extra state for the resource.
# ------------------------------------------------------------------------------------------------


def _stable_guid(*parts: str) -> str:
    return str(uuid.uuid5(_MOCK_NAMESPACE, "|".join(parts)))


def _identity_outputs(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "principalId": _stable_guid("principal", name),
        "clientId": _stable_guid("client", name),
        "tenantId": FAKE_TENANT_ID,
    }


COMPUTED_OUTPUTS: dict[str, Callable[[str, Mapping[str, Any]], dict[str, Any]]] = {
    "azure-native:managedidentity:UserAssignedIdentity": _identity_outputs,
    "azure-native:containerregistry:Registry": lambda name, i: {"loginServer": f"{name}.azurecr.io"},
    "azure-native:keyvault:Vault": lambda name, i: {
        "properties": {**i.get("properties", {}), "vaultUri": f"https://{name}.vault.azure.net/"}
    },
    "azure-native:keyvault:Secret": lambda name, i: {
        "properties": {**i.get("properties", {}), "secretUri": f"https://vault.vault.azure.net/secrets/{name}"}
    },
    "azure-native:dbforpostgresql:Server": lambda name, i: {
        "fullyQualifiedDomainName": f"{name}.postgres.database.azure.com"
    },
    "azure-native:web:WebApp": lambda name, i: {"defaultHostName": f"{name}.azurewebsites.net"},
    # The generic resource answers with the resource's properties as Azure returns them (Application Insights).
    "azure-native:resources:Resource": lambda name, i: {
        "properties": {**i.get("properties", {}), **_computed_properties(i)}
    },
    "random:index/randomPassword:RandomPassword": lambda name, i: {"result": "mock-" + "x" * int(i.get("length", 16))},
    "random:index/randomString:RandomString": lambda name, i: {
        "result": _stable_guid("string", name)[: int(i["length"])]
    },
    "random:index/randomBytes:RandomBytes": lambda name, i: {
        "hex": _stable_guid("bytes", name).replace("-", "") * 2,
        "base64": "bW9jaw==",
    },
    "azure-native:cognitiveservices:Account": lambda name, i: {
        "properties": {
            **i.get("properties", {}),
            "endpoint": f"https://{i.get('properties', {}).get('customSubDomainName', name)}.openai.azure.com/",
        }
    },
    # Internal VNet mode: Azure assigns a private IP from the subnet; system-assigned identity gets a principal.
    "azure-native:apimanagement:ApiManagementService": lambda name, i: {
        "name": i.get("serviceName", name),  # its name input is `serviceName` (children use that key too)
        "gatewayUrl": f"https://{i.get('serviceName', name)}.azure-api.net",
        "privateIPAddresses": ["10.0.0.4"],
        "identity": {
            **i.get("identity", {}),
            "principalId": _stable_guid("principal", name),
            "tenantId": FAKE_TENANT_ID,
        },
    },
}


def _public_ip_outputs(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A public IP gets an address (from the documentation range) and, with a DNS label, its cloudapp name."""
    digest = uuid.uuid5(_MOCK_NAMESPACE, f"pip|{name}").bytes
    outputs: dict[str, Any] = {"ipAddress": f"203.0.113.{digest[0] % 250 + 1}"}
    label = (inputs.get("dnsSettings") or {}).get("domainNameLabel")
    if label:
        location = inputs.get("location", "swedencentral")
        outputs["dnsSettings"] = {**inputs["dnsSettings"], "fqdn": f"{label}.{location}.cloudapp.azure.com"}
    return outputs


COMPUTED_OUTPUTS["azure-native:network:PublicIPAddress"] = _public_ip_outputs


# The input that holds a resource's Azure name, per type (most follow `<type>Name`).
_NAME_INPUTS = ("name", "resourceName", "policyName")


def _azure_name(type_token: str, logical_name: str, inputs: Mapping[str, Any]) -> str:
    type_name = type_token.rsplit(":", 1)[-1]
    specific = type_name[0].lower() + type_name[1:] + "Name"
    # The SDK's keys may case an acronym otherwise than the type (`publicIpAddressName` of PublicIPAddress).
    by_lower = {key.lower(): value for key, value in inputs.items()}
    for key in (specific, *_NAME_INPUTS):
        value = inputs.get(key, by_lower.get(key.lower()))
        if isinstance(value, str) and value:
            return value
    return logical_name


# ARM resource types, so mock ids look like the ids Azure returns (code may parse them).
# Child types name their parent through an input, e.g. `{vaultName}`.
ARM_TYPES = {
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:keyvault:Secret": "Microsoft.KeyVault/vaults/{vaultName}/secrets",
    "azure-native:containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "azure-native:containerregistry:AgentPool": "Microsoft.ContainerRegistry/registries/{registryName}/agentPools",
    "azure-native:dbforpostgresql:Server": "Microsoft.DBforPostgreSQL/flexibleServers",
    "azure-native:dbforpostgresql:Database": "Microsoft.DBforPostgreSQL/flexibleServers/{serverName}/databases",
    "azure-native:network:VirtualNetwork": "Microsoft.Network/virtualNetworks",
    "azure-native:network:NetworkSecurityGroup": "Microsoft.Network/networkSecurityGroups",
    "azure-native:network:PrivateEndpoint": "Microsoft.Network/privateEndpoints",
    "azure-native:privatedns:PrivateZone": "Microsoft.Network/privateDnsZones",
    "azure-native:web:WebApp": "Microsoft.Web/sites",
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms",
    "azure-native:cognitiveservices:Account": "Microsoft.CognitiveServices/accounts",
    "azure-native:apimanagement:ApiManagementService": "Microsoft.ApiManagement/service",
    "azure-native:managedidentity:UserAssignedIdentity": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "azure-native:resources:Resource": "{resourceProviderNamespace}/{resourceType}",
    "azure-native:containerinstance:ContainerGroup": "Microsoft.ContainerInstance/containerGroups",
    "azure-native:network:PublicIPAddress": "Microsoft.Network/publicIPAddresses",
    "azure-native:network:RouteTable": "Microsoft.Network/routeTables",
    "azure-native:network:Route": "Microsoft.Network/routeTables/{routeTableName}/routes",
    "azure-native:network:AzureFirewall": "Microsoft.Network/azureFirewalls",
    "azure-native:network:FirewallPolicy": "Microsoft.Network/firewallPolicies",
    "azure-native:network:FirewallPolicyRuleCollectionGroup": (
        "Microsoft.Network/firewallPolicies/{firewallPolicyName}/ruleCollectionGroups"
    ),
    "azure-native:network:ApplicationGateway": "Microsoft.Network/applicationGateways",
    "azure-native:network:WebApplicationFirewallPolicy": (
        "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"
    ),
}


def _computed_properties(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What Azure adds to a generic resource's properties (only Application Insights is declared that way)."""
    if inputs.get("resourceType") != "components":
        return {}
    key = _stable_guid("appi", inputs.get("resourceName", ""))
    return {"ConnectionString": f"InstrumentationKey={key};IngestionEndpoint=https://example.invalid/"}


def _resource_id(type_token: str, azure_name: str, inputs: Mapping[str, Any]) -> str:
    if type_token == "azure-native:resources:ResourceGroup":
        return f"/subscriptions/{FAKE_SUBSCRIPTION_ID}/resourceGroups/{azure_name}"
    module, type_name = type_token.split(":")[1:3]
    arm_type = ARM_TYPES.get(type_token, f"Microsoft.{module}/{type_name}")
    with contextlib.suppress(KeyError):  # a parent name the mock was not given: keep the template in the id
        arm_type = arm_type.format(**inputs)
    group = inputs.get("resourceGroupName", "rg-unknown")
    return f"/subscriptions/{FAKE_SUBSCRIPTION_ID}/resourceGroups/{group}/providers/{arm_type}/{azure_name}"


def _identity_as_output(inputs: dict[str, Any]) -> None:
    """Inputs list user-assigned identity ids; Azure answers with a map of id -> identity details."""
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        inputs["identity"] = {
            **identity,
            "userAssignedIdentities": {
                i: {"principalId": _stable_guid("principal", i)} for i in identity["userAssignedIdentities"]
            },
        }


class AzureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        # Subnet id -> its block, from the VNets registered so far (what a firewall's address comes from).
        self.subnet_blocks: dict[str, str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        if not args.typ.startswith("azure-native:"):
            state = {**inputs, **COMPUTED_OUTPUTS.get(args.typ, lambda n, i: {})(args.name, inputs)}
            return f"{args.name}-id", state
        _identity_as_output(inputs)
        azure_name = _azure_name(args.typ, args.name, inputs)
        resource_id = _resource_id(args.typ, azure_name, inputs)
        computed = COMPUTED_OUTPUTS.get(args.typ, lambda n, i: {})(azure_name, inputs)
        if args.typ == "azure-native:network:VirtualNetwork":
            for subnet in inputs.get("subnets") or []:
                self.subnet_blocks[f"{resource_id}/subnets/{subnet.get('name')}"] = subnet.get("addressPrefix", "")
        if args.typ == "azure-native:network:AzureFirewall":
            computed["ipConfigurations"] = [self._with_private_ip(c) for c in inputs.get("ipConfigurations") or []]
        return resource_id, {**inputs, "name": azure_name, "id": resource_id, **computed}

    def _with_private_ip(self, ip_configuration: Mapping[str, Any]) -> dict[str, Any]:
        """Azure gives a firewall an address of its subnet; the mock takes the first usable one (after the
        four Azure reserves), so routes and rules that use it can be checked."""
        block = self.subnet_blocks.get(str((ip_configuration.get("subnet") or {}).get("id")))
        address = str(ipaddress.IPv4Network(block)[4]) if block else "10.255.255.4"
        return {**ip_configuration, "privateIPAddress": address}

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": _stable_guid("deployer-client"),
                "objectId": _stable_guid("deployer-object"),
                "subscriptionId": FAKE_SUBSCRIPTION_ID,
                "tenantId": FAKE_TENANT_ID,
            }
        raise NotImplementedError(f"no mock for invoke {args.token}; add one in tools/offline.py")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping the resource options the mocks API does not expose."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.requests[response.urn] = request
        return response


# ------------------------------------------------------------------------------------------------
# Config: the stack file as the CLI would hand it to the program
# ------------------------------------------------------------------------------------------------


def stack_config_values(stack: str) -> dict[str, Any]:
    """The `config:` mapping of `Pulumi.<stack>.yaml`, keys as written (`aichat:network`, ...)."""
    from components.config import stack_file_values

    values = stack_file_values(stack)
    if values is None:
        raise FileNotFoundError(f"no stack file Pulumi.{stack}.yaml; stacks here: {', '.join(known_stacks())}")
    return values


def known_stacks() -> list[str]:
    return sorted(p.name.split(".")[1] for p in REPO_ROOT.glob("Pulumi.*.yaml"))


def _as_engine_config(values: Mapping[str, Any]) -> dict[str, str]:
    """The CLI passes objects as JSON text and scalars as strings."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


# ------------------------------------------------------------------------------------------------
# Running the program
# ------------------------------------------------------------------------------------------------


def run_program(
    stack: str,
    *,
    config: Mapping[str, Any] | None = None,
    program: Path = REPO_ROOT / "__main__.py",
) -> ProgramRun:
    """Run `program` for `stack` under mocks. `config` replaces the stack file's values when given."""
    return run_under_mocks(stack, lambda: runpy.run_path(str(program), run_name="__main__"), config=config)


def run_under_mocks(stack: str, declare: Callable[[], Any], *, config: Mapping[str, Any] | None = None) -> ProgramRun:
    """Call `declare` (the program, or a test's few resources) under mocks with the stack's config."""
    values = dict(stack_config_values(stack) if config is None else config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi_settings.ROOT.set(None)
        mocks = AzureMocks()
        monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(_as_engine_config(values))
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        try:
            loop.run_until_complete(run_pulumi_func(declare))
        except Exception as error:
            raise ProgramError(error, _registrations(monitor)) from error
        outputs = loop.run_until_complete(_resolve_stack_outputs())
        return ProgramRun(stack=stack, resources=_registrations(monitor), outputs=outputs, config=values)
    finally:
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_all_config({})
        asyncio.set_event_loop(None)
        loop.close()


async def _resolve_stack_outputs() -> dict[str, Any]:
    root = pulumi_settings.get_root_resource()
    resolved = {}
    for name, value in getattr(root, "outputs", {}).items():
        resolved[name] = await pulumi.Output.from_input(value).future()
    return resolved


def _registrations(monitor: RecordingMonitor) -> list[Registration]:
    registrations = []
    for urn, request in monitor.requests.items():
        if request.type == "pulumi:pulumi:Stack":
            continue
        state = monitor.resources.get(urn)
        inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
        timeouts = request.customTimeouts
        registrations.append(
            Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                inputs=_plain(inputs),
                outputs=_plain(dict(state.state)) if state else {},
                parent=request.parent,
                custom=request.custom,
                protect=request.protect,
                depends_on=tuple(request.dependencies),
                custom_timeouts={
                    k: getattr(timeouts, k) for k in ("create", "update", "delete") if getattr(timeouts, k)
                },
                alias_types=tuple(alias.spec.type for alias in request.aliases if alias.spec.type),
            )
        )
    return registrations


def _plain(value: Any) -> Any:
    """Wire values as plain Python (the mock returns floats for numbers; keep them as they are)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k != "__defaults"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
