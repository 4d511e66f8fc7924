"""The AI gateway: API Management in the VNet in front of every Azure OpenAI account.

Callers (the app) send Azure OpenAI requests to `<gateway>/openai/deployments/...` with an Entra
token; the API policy (gateway_policy.xml) checks it, limits tokens per caller and per signed-in user,
and forwards the request with the gateway's own identity to a pool of one backend per account. Each member has a
circuit breaker, so a throttled (429) or failing (5xx) account drops out until it recovers.
docs/gateway.md walks through a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.apimanagement as apimanagement
import pulumi_azure_native.network as network
import pulumi_azure_native.privatedns as privatedns

from components.config import CircuitBreakerConfig, GatewayConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.gateway_policy import OPENAI_RESOURCE, PolicyValues, render_policy
from components.openai import OpenAiAccount
from components.private_dns import PrivateDnsZones, PrivateDnsZonesArgs
from components.public_ip import standard_public_ip
from components.roles import BuiltInRole, assign_role

POOL_BACKEND_ID = "openai-pool"
API_ID = "azure-openai"
# The app's AzureOpenAI client calls <endpoint>/openai/deployments/<deployment>/...?api-version=...
API_PATH = "openai"
# Host names API Management serves in internal mode; none is in public DNS (the private zone has them).
SERVICE_HOST_PREFIXES = ("", "portal", "developer", "management", "scm")
GATEWAY_DNS_ZONE = "azure-api.net"
# Old protocols and the 3DES cipher off, for clients and for backends.
TLS_HARDENING = {
    f"Microsoft.WindowsAzure.ApiManagement.Gateway.Security.{setting}": "False"
    for setting in (
        "Protocols.Tls10",
        "Protocols.Tls11",
        "Protocols.Ssl30",
        "Backend.Protocols.Tls10",
        "Backend.Protocols.Tls11",
        "Backend.Protocols.Ssl30",
        "Ciphers.TripleDes168",
    )
}
# Failures that trip a member's circuit breaker: throttling and server errors.
TRIPPING_STATUS_RANGES = ((429, 429), (500, 599))


@dataclass(frozen=True)
class OpenAiOperation:
    operation_id: str
    display_name: str
    url_template: str


OPENAI_OPERATIONS = (
    OpenAiOperation("chat-completions", "Creates a chat completion", "/deployments/{deployment-id}/chat/completions"),
    OpenAiOperation("embeddings", "Creates embeddings", "/deployments/{deployment-id}/embeddings"),
)


@dataclass
class AiGatewayArgs:
    context: StackContext
    settings: GatewayConfig  # SKU, capacity, zones, publisher, per-caller/per-user token limits, circuit breaker
    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # the apiManagement subnet (its NSG comes from components/network.py)
    vnet_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    app_insights_id: pulumi.Input[str]
    app_insights_connection_string: pulumi.Input[str]
    accounts: Sequence[OpenAiAccount]
    caller_client_ids: Sequence[pulumi.Input[str]]  # managed identities allowed to call (client ids)
    # The chat app's identity (one of caller_client_ids): the only caller whose x-aichat-user header is believed.
    app_client_id: pulumi.Input[str]
    # What must exist before the service is created: with egress through the firewall, the routes and rules
    # its control-plane dependencies take (a deployment without them fails to activate the service).
    depends_on: Sequence[pulumi.Resource] = ()


class AiGateway(pulumi.ComponentResource):
    gateway_url: pulumi.Output[str]
    service_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    private_ip: pulumi.Output[str]

    def __init__(self, name: str, args: AiGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:ai:AiGateway", name, None, opts)
        service = self._service(name, args)
        self.service_id = service.id
        self.gateway_url = service.gateway_url
        self.principal_id = service.identity.apply(lambda identity: identity.principal_id if identity else None)
        self.private_ip = service.private_ip_addresses.apply(lambda addresses: addresses[0])

        self._private_dns(name, args, service)
        for account in args.accounts:
            assign_role(
                f"{name}-openai-user-{account.instance.name}",
                role=BuiltInRole.COGNITIVE_SERVICES_OPENAI_USER,
                scope=account.id,
                principal_id=self.principal_id,
                parent=self,
            )
        pool = self._backend_pool(name, args, service)
        logger = self._logger(name, args, service)
        self._api(name, args, service, pool, logger)
        send_to_workspace(name, resource=service, workspace_id=args.workspace_id, parent=self)
        self.register_outputs({"gateway_url": self.gateway_url, "service_id": self.service_id})

    def _service(self, name: str, args: AiGatewayArgs) -> apimanagement.ApiManagementService:
        context = args.context
        settings = args.settings
        zoned = bool(settings.zones)
        return apimanagement.ApiManagementService(
            f"{name}-apim",
            service_name=context.unique_name("apim", max_length=50),
            resource_group_name=args.resource_group_name,
            location=context.location,
            sku=apimanagement.ApiManagementServiceSkuPropertiesArgs(name=settings.sku, capacity=settings.capacity),
            publisher_email=settings.publisher_email,
            publisher_name=settings.publisher_name,
            identity=apimanagement.ApiManagementServiceIdentityArgs(type="SystemAssigned"),
            # Internal mode: the gateway has a private IP in the subnet and no public endpoint for APIs.
            virtual_network_type="Internal",
            virtual_network_configuration=apimanagement.VirtualNetworkConfigurationArgs(
                subnet_resource_id=args.subnet_id
            ),
            # Units spread over the zones (their number a multiple of the zones: config.py checks it).
            zones=list(settings.zones) if zoned else None,
            public_ip_address_id=self._management_ip(name, args).id if zoned else None,
            custom_properties=TLS_HARDENING,
            tags=dict(context.tags),
            # Classic tiers take 30-90 minutes to create, and as long to move in the network.
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create="120m", update="120m"),
                depends_on=list(args.depends_on),
            ),
        )

    def _management_ip(self, name: str, args: AiGatewayArgs) -> network.PublicIPAddress:
        """A VNet-injected instance with zones needs a public IP of its own, Standard, zone-redundant, with a DNS
        label; in internal mode it carries only Azure's management traffic, never API calls. Microsoft's
        reliability guide requires it (reliability-docs, articles/reliability/reliability-api-management.md)
        although the VNet guide calls it optional since May 2024: the stricter reading deploys either way."""
        context = args.context
        return standard_public_ip(
            f"{name}-management-ip",
            context=context,
            name_part="apim",
            resource_group_name=args.resource_group_name,
            zones=["1", "2", "3"],
            dns_label=context.unique_name("apim", max_length=60),
            parent=self,
        )

    def _private_dns(self, name: str, args: AiGatewayArgs, service: apimanagement.ApiManagementService) -> None:
        """`azure-api.net` inside the VNet: every host name of the service -> its private IP."""
        zones = PrivateDnsZones(
            f"{name}-dns",
            PrivateDnsZonesArgs(args.context, args.resource_group_name, args.vnet_id, zone_names=[GATEWAY_DNS_ZONE]),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for prefix in SERVICE_HOST_PREFIXES:
            privatedns.PrivateRecordSet(
                f"{name}-dns-{prefix or 'gateway'}",
                private_zone_name=zones.zone_names[GATEWAY_DNS_ZONE],
                resource_group_name=args.resource_group_name,
                record_type="A",
                relative_record_set_name=service.name.apply(lambda host, p=prefix: f"{host}.{p}" if p else host),
                ttl=300,
                a_records=[privatedns.ARecordArgs(ipv4_address=self.private_ip)],
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _backend_pool(
        self, name: str, args: AiGatewayArgs, service: apimanagement.ApiManagementService
    ) -> apimanagement.Backend:
        """One backend per account, each with a circuit breaker, and a pool over them."""
        breaker = _circuit_breaker(args.settings.circuit_breaker)
        members = [(account, self._member_backend(name, args, service, account, breaker)) for account in args.accounts]
        # A pool has no url or protocol of its own (Azure rejects them); members are referenced by id.
        return apimanagement.Backend(
            f"{name}-backend-pool",
            backend_id=POOL_BACKEND_ID,
            service_name=service.name,
            resource_group_name=args.resource_group_name,
            title="Azure OpenAI pool",
            description="lower priority first; weights split traffic within a priority",
            type="Pool",
            pool=apimanagement.BackendBaseParametersPoolArgs(
                services=[
                    apimanagement.BackendPoolItemArgs(
                        id=member.id, priority=account.instance.priority, weight=account.instance.weight
                    )
                    for account, member in members
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _member_backend(
        self,
        name: str,
        args: AiGatewayArgs,
        service: apimanagement.ApiManagementService,
        account: OpenAiAccount,
        breaker: apimanagement.BackendCircuitBreakerArgs,
    ) -> apimanagement.Backend:
        instance = account.instance
        return apimanagement.Backend(
            f"{name}-backend-{instance.name}",
            backend_id=f"openai-{instance.name}",
            service_name=service.name,
            resource_group_name=args.resource_group_name,
            title=f"Azure OpenAI {instance.name} ({instance.region})",
            description=f"priority {instance.priority}, weight {instance.weight}",
            url=account.endpoint.apply(lambda endpoint: f"{endpoint.rstrip('/')}/{API_PATH}"),
            protocol="http",
            circuit_breaker=breaker,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _logger(
        self, name: str, args: AiGatewayArgs, service: apimanagement.ApiManagementService
    ) -> apimanagement.Logger:
        """Application Insights logger that authenticates with the gateway's identity (App Insights has no keys)."""
        publisher = assign_role(
            f"{name}-metrics-publisher",
            role=BuiltInRole.MONITORING_METRICS_PUBLISHER,
            scope=args.app_insights_id,
            principal_id=self.principal_id,
            parent=self,
        )
        return apimanagement.Logger(
            f"{name}-logger",
            logger_id="appinsights",
            service_name=service.name,
            resource_group_name=args.resource_group_name,
            logger_type="applicationInsights",
            resource_id=args.app_insights_id,
            credentials={
                "connectionString": args.app_insights_connection_string,
                "identityClientId": "SystemAssigned",
            },
            description="Application Insights, managed identity credentials",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[publisher]),
        )

    def _api(
        self,
        name: str,
        args: AiGatewayArgs,
        service: apimanagement.ApiManagementService,
        pool: apimanagement.Backend,
        logger: apimanagement.Logger,
    ) -> None:
        """The Azure OpenAI inference operations the app uses, under the same paths as Azure OpenAI."""
        common = dict(service_name=service.name, resource_group_name=args.resource_group_name)
        api = apimanagement.Api(
            f"{name}-api",
            api_id=API_ID,
            path=API_PATH,
            display_name="Azure OpenAI",
            description="Chat completions and embeddings, load-balanced over the stack's Azure OpenAI accounts",
            protocols=["https"],
            api_type="http",
            # Callers authenticate with Entra tokens (validate-azure-ad-token), not subscription keys.
            subscription_required=False,
            opts=pulumi.ResourceOptions(parent=self),
            **common,
        )
        for operation in OPENAI_OPERATIONS:
            apimanagement.ApiOperation(
                f"{name}-op-{operation.operation_id}",
                api_id=api.name,
                operation_id=operation.operation_id,
                display_name=operation.display_name,
                method="POST",
                url_template=operation.url_template,
                template_parameters=[
                    apimanagement.ParameterContractArgs(name="deployment-id", type="string", required=True)
                ],
                request=apimanagement.RequestContractArgs(
                    query_parameters=[
                        apimanagement.ParameterContractArgs(name="api-version", type="string", required=True)
                    ]
                ),
                opts=pulumi.ResourceOptions(parent=self),
                **common,
            )
        apimanagement.ApiPolicy(
            f"{name}-api-policy",
            api_id=api.name,
            policy_id="policy",
            format="xml",
            value=self._policy(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pool]),
            **common,
        )
        apimanagement.ApiDiagnostic(
            f"{name}-api-diagnostics",
            api_id=api.name,
            diagnostic_id="applicationinsights",  # the id Azure requires for an Application Insights logger
            logger_id=logger.id,
            always_log="allErrors",
            sampling=apimanagement.SamplingSettingsArgs(sampling_type="fixed", percentage=100),
            # Custom metrics with dimensions: what azure-openai-emit-token-metric needs.
            metrics=True,
            log_client_ip=True,
            verbosity="information",
            http_correlation_protocol="W3C",
            # No bodies: prompts and answers stay out of telemetry (and streaming is not buffered).
            frontend=_headers_only(),
            backend=_headers_only(),
            opts=pulumi.ResourceOptions(parent=self),
            **common,
        )

    def _policy(self, args: AiGatewayArgs) -> pulumi.Output[str]:
        settings = args.settings
        member_count = len(args.accounts)
        return pulumi.Output.all(args.context.tenant_id, args.app_client_id, *args.caller_client_ids).apply(
            lambda values: render_policy(
                PolicyValues(
                    pool_backend_id=POOL_BACKEND_ID,
                    member_count=member_count,
                    tenant_id=values[0],
                    client_application_ids=values[2:],
                    app_client_id=values[1],
                    audience=OPENAI_RESOURCE,
                    tokens_per_minute=settings.tokens_per_minute_per_caller,
                    tokens_per_minute_per_user=settings.tokens_per_minute_per_user,
                    metric_namespace=settings.metric_namespace,
                    token_quota_per_user=settings.token_quota_per_user,
                    token_quota_period=settings.token_quota_period,
                )
            )
        )


def _circuit_breaker(settings: CircuitBreakerConfig) -> apimanagement.BackendCircuitBreakerArgs:
    """Trip on throttling and server errors; a Retry-After from OpenAI decides how long the member rests."""
    return apimanagement.BackendCircuitBreakerArgs(
        rules=[
            apimanagement.CircuitBreakerRuleArgs(
                name="throttled-or-failing",
                accept_retry_after=True,
                trip_duration=settings.trip_duration,
                failure_condition=apimanagement.CircuitBreakerFailureConditionArgs(
                    count=settings.failure_count,
                    interval=settings.failure_interval,
                    status_code_ranges=[
                        apimanagement.FailureStatusCodeRangeArgs(min=low, max=high)
                        for low, high in TRIPPING_STATUS_RANGES
                    ],
                ),
            )
        ]
    )


def _headers_only() -> apimanagement.PipelineDiagnosticSettingsArgs:
    no_body = apimanagement.HttpMessageDiagnosticArgs(body=apimanagement.BodyDiagnosticSettingsArgs(bytes=0))
    return apimanagement.PipelineDiagnosticSettingsArgs(request=no_body, response=no_body)
