"""How users reach the app: App Service's own endpoint (`public`), or Application Gateway WAF_v2 (`applicationGateway`).

In `applicationGateway` mode (docs/network.md walks a request through it):

- a public IP (Standard, static, in the configured zones) and the gateway in its own subnet, spread over the
  zones, autoscaling between the configured instance counts;
- a WAF policy with Microsoft's default rule set 2.1 and the bot manager rule set 1.1, in Prevention mode
  (Detection only outside prod; components/config.py refuses it in prod);
- an HTTPS listener for the configured host name whose certificate the gateway reads from this stack's Key
  Vault with its own user-assigned identity (Key Vault Secrets User on that one secret), reaching the vault
  through the vault's private endpoint; HTTP on port 80 only redirects to HTTPS;
- one backend: the web app's default host name, which private DNS resolves to the web app's private endpoint,
  sent as the host header App Service routes on, over HTTPS, with a health probe on the app's health path;
- the gateway's logs (access, performance, WAF) and metrics to the workspace.

The web app side (public access off, its private endpoint, sign-in redirects on the gateway's host name) is
components/app_service.py's, switched by the same config (`ChatWebAppArgs.behind_gateway`).

In `public` mode nothing is declared: the app's own URL is the way in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.network as network

from components.config import ApplicationGatewayConfig, IngressConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.public_ip import standard_public_ip
from components.roles import BuiltInRole, assign_role

# Microsoft's managed rule sets for Application Gateway WAF, the versions the baseline uses
# (Azure-Samples/openai-end-to-end-baseline, application-gateway.bicep; AVM
# avm/res/network/application-gateway-web-application-firewall-policy defaults to the same pair).
MANAGED_RULE_SETS = (("Microsoft_DefaultRuleSet", "2.1"), ("Microsoft_BotManagerRuleSet", "1.1"))
# TLS 1.2 and newer with strong ciphers only (application-gateway/application-gateway-ssl-policy-overview.md).
SSL_POLICY = "AppGwSslPolicy20220101S"
# The WAF inspects the first 128 KB of a body (the default inspection limit with DRS 2.1) and accepts bodies
# up to the app's own limit (MAX_REQUEST_BYTES, 256 KiB, apps/chat/settings.py), so a long conversation gets
# the app's clear 413, not the gateway's (application-gateway/application-gateway-waf-request-size-limits.md).
WAF_INSPECTED_BODY_KB = 128
MAX_REQUEST_BODY_KB = 256
# The app streams answers for up to the model's time; the container's own limit is 120 s (apps/chat/Dockerfile).
BACKEND_TIMEOUT_SECONDS = 120
# Names of the gateway's parts, referenced by id from one another.
FRONTEND = "public-frontend"
HTTPS_PORT, HTTP_PORT = "https", "http"
CERTIFICATE = "listener-certificate"
HTTPS_LISTENER, HTTP_LISTENER = "chat-https", "chat-http-redirect"
REDIRECT = "http-to-https"
BACKEND_POOL, BACKEND_SETTINGS, PROBE = "chat-app", "chat-app-https", "chat-app-health"


@dataclass
class IngressArgs:
    context: StackContext
    settings: IngressConfig  # mode; in applicationGateway mode the gateway's host name, certificate, WAF, scale
    resource_group_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]  # Log Analytics, for the gateway's diagnostics
    app_url: pulumi.Input[str]  # the web app's own URL: the way in when mode is public
    backend_host_name: pulumi.Input[str]  # the web app's default host name (private DNS resolves it privately)
    health_check_path: str  # the app's health path (aichat:appService.healthCheckPath)
    subnet_id: pulumi.Input[str] | None = None  # the applicationGateway subnet (mode applicationGateway)
    key_vault_id: pulumi.Input[str] | None = None  # this stack's vault, which holds the listener certificate
    # What the gateway needs before it starts: the vault's private endpoint and DNS (the certificate) and the
    # web app's (the backend); the gateway caches DNS answers, so it comes after them.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class Ingress(pulumi.ComponentResource):
    """`url` is where users go: https://<hostName> behind the gateway, the web app's own URL otherwise."""

    url: pulumi.Output[str]
    public_ip: pulumi.Output[str] | None  # the gateway's address (what the host name's DNS points at)
    fqdn: pulumi.Output[str] | None  # the public IP's Azure DNS name, the CNAME target for the host name

    def __init__(self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:network:Ingress", name, None, opts)
        gateway_settings = args.settings.application_gateway
        self.public_ip = self.fqdn = None
        if not args.settings.through_gateway or gateway_settings is None:
            self.url = pulumi.Output.from_input(args.app_url)
            self.register_outputs({"url": self.url})
            return
        if args.subnet_id is None or args.key_vault_id is None:
            raise ValueError(f"{name}: mode applicationGateway needs the gateway's subnet and the Key Vault")
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.context.name("id", "agw"),
            resource_group_name=args.resource_group_name,
            location=args.context.location,
            tags=dict(args.context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        certificate_reader = assign_role(
            f"{name}-certificate-reader",
            role=BuiltInRole.KEY_VAULT_SECRETS_USER,
            scope=certificate_scope(args.key_vault_id, gateway_settings.certificate_secret_id),
            principal_id=identity.principal_id,
            parent=self,
        )
        waf = self._waf_policy(name, args, gateway_settings)
        # Standard and static (what v2 requires), in the gateway's zones; its DNS name is the CNAME target.
        address = standard_public_ip(
            f"{name}-ip",
            context=args.context,
            name_part="agw",
            resource_group_name=args.resource_group_name,
            zones=gateway_settings.zones,
            dns_label=args.context.lasting_name("agw", max_length=60),
            parent=self,
        )
        gateway = self._gateway(name, args, gateway_settings, identity, waf, address, [certificate_reader])
        send_to_workspace(name, resource=gateway, workspace_id=args.workspace_id, parent=self)
        self.public_ip = address.ip_address
        self.fqdn = address.dns_settings.apply(lambda dns: dns.fqdn if dns else None)
        self.url = pulumi.Output.from_input(f"https://{gateway_settings.host_name}")
        self.register_outputs({"url": self.url, "public_ip": self.public_ip, "fqdn": self.fqdn})

    def _waf_policy(
        self, name: str, args: IngressArgs, settings: ApplicationGatewayConfig
    ) -> network.WebApplicationFirewallPolicy:
        context = args.context
        return network.WebApplicationFirewallPolicy(
            f"{name}-waf",
            policy_name=context.name("waf"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            policy_settings=network.PolicySettingsArgs(
                state="Enabled",
                mode=settings.waf_mode,
                request_body_check=True,
                request_body_inspect_limit_in_kb=WAF_INSPECTED_BODY_KB,
                max_request_body_size_in_kb=MAX_REQUEST_BODY_KB,
            ),
            managed_rules=network.ManagedRulesDefinitionArgs(
                managed_rule_sets=[
                    network.ManagedRuleSetArgs(rule_set_type=rule_set, rule_set_version=version)
                    for rule_set, version in MANAGED_RULE_SETS
                ]
            ),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _gateway(
        self,
        name: str,
        args: IngressArgs,
        settings: ApplicationGatewayConfig,
        identity: managedidentity.UserAssignedIdentity,
        waf: network.WebApplicationFirewallPolicy,
        address: network.PublicIPAddress,
        after: Sequence[pulumi.Resource],
    ) -> network.ApplicationGateway:
        context = args.context
        gateway_name = context.name("agw")
        part = _part_ids(context, args.resource_group_name, gateway_name)
        return network.ApplicationGateway(
            f"{name}-gateway",
            application_gateway_name=gateway_name,
            resource_group_name=args.resource_group_name,
            location=context.location,
            sku=network.ApplicationGatewaySkuArgs(name="WAF_v2", tier="WAF_v2"),
            autoscale_configuration=network.ApplicationGatewayAutoscaleConfigurationArgs(
                min_capacity=settings.min_capacity, max_capacity=settings.max_capacity
            ),
            zones=list(settings.zones) or None,
            # Key Vault certificates need a user-assigned identity (key-vault-certs.md, "How integration works").
            identity=network.ManagedServiceIdentityArgs(type="UserAssigned", user_assigned_identities=[identity.id]),
            firewall_policy=network.SubResourceArgs(id=waf.id),
            # HTTP/2 between browsers and the gateway only (application-gateway/configuration-listeners.md).
            enable_http2=True,
            # Streamed answers (/chat/stream) reach the browser token by token only without response buffering,
            # which the gateway does by default; the WAF needs request buffering kept on
            # (application-gateway/proxy-buffers.md).
            global_configuration=network.ApplicationGatewayGlobalConfigurationArgs(
                enable_request_buffering=True, enable_response_buffering=False
            ),
            ssl_policy=network.ApplicationGatewaySslPolicyArgs(policy_type="Predefined", policy_name=SSL_POLICY),
            gateway_ip_configurations=[
                network.ApplicationGatewayIPConfigurationArgs(
                    name="gateway-subnet", subnet=network.SubResourceArgs(id=args.subnet_id)
                )
            ],
            frontend_ip_configurations=[
                network.ApplicationGatewayFrontendIPConfigurationArgs(
                    name=FRONTEND, public_ip_address=network.SubResourceArgs(id=address.id)
                )
            ],
            frontend_ports=[
                network.ApplicationGatewayFrontendPortArgs(name=HTTPS_PORT, port=443),
                network.ApplicationGatewayFrontendPortArgs(name=HTTP_PORT, port=80),
            ],
            ssl_certificates=[
                network.ApplicationGatewaySslCertificateArgs(
                    name=CERTIFICATE, key_vault_secret_id=settings.certificate_secret_id
                )
            ],
            http_listeners=[
                network.ApplicationGatewayHttpListenerArgs(
                    name=listener,
                    frontend_ip_configuration=network.SubResourceArgs(id=part("frontendIPConfigurations", FRONTEND)),
                    frontend_port=network.SubResourceArgs(id=part("frontendPorts", port)),
                    protocol=protocol,
                    host_name=settings.host_name,
                    # A listener for one host name (multi-site) answers by SNI (configuration-listeners.md).
                    require_server_name_indication=True if protocol == "Https" else None,
                    ssl_certificate=network.SubResourceArgs(id=part("sslCertificates", CERTIFICATE))
                    if protocol == "Https"
                    else None,
                )
                for listener, port, protocol in (
                    (HTTPS_LISTENER, HTTPS_PORT, "Https"),
                    (HTTP_LISTENER, HTTP_PORT, "Http"),
                )
            ],
            redirect_configurations=[
                network.ApplicationGatewayRedirectConfigurationArgs(
                    name=REDIRECT,
                    # HTTP only ever redirects to HTTPS (application-gateway/redirect-http-to-https-portal.md).
                    redirect_type="Permanent",
                    target_listener=network.SubResourceArgs(id=part("httpListeners", HTTPS_LISTENER)),
                    include_path=True,
                    include_query_string=True,
                )
            ],
            backend_address_pools=[
                network.ApplicationGatewayBackendAddressPoolArgs(
                    name=BACKEND_POOL,
                    backend_addresses=[network.ApplicationGatewayBackendAddressArgs(fqdn=args.backend_host_name)],
                )
            ],
            backend_http_settings_collection=[
                network.ApplicationGatewayBackendHttpSettingsArgs(
                    name=BACKEND_SETTINGS,
                    port=443,
                    protocol="Https",
                    cookie_based_affinity="Disabled",
                    # App Service routes on the host header: send the app's own name (and SNI), which its
                    # *.azurewebsites.net certificate covers. Sign-in redirects use X-Original-Host instead
                    # (app-service/overview-app-gateway-integration.md).
                    pick_host_name_from_backend_address=True,
                    request_timeout=BACKEND_TIMEOUT_SECONDS,
                    probe=network.SubResourceArgs(id=part("probes", PROBE)),
                )
            ],
            probes=[
                network.ApplicationGatewayProbeArgs(
                    name=PROBE,
                    protocol="Https",
                    path=args.health_check_path,
                    # Azure's defaults for a custom probe (application-gateway/application-gateway-probe-overview.md).
                    interval=30,
                    timeout=30,
                    unhealthy_threshold=3,
                    pick_host_name_from_backend_http_settings=True,
                    # Only a healthy answer counts (the health path is left out of sign-in behind the gateway).
                    match=network.ApplicationGatewayProbeHealthResponseMatchArgs(status_codes=["200"]),
                )
            ],
            # HTTPS goes to the app; HTTP only to the redirect.
            request_routing_rules=[
                network.ApplicationGatewayRequestRoutingRuleArgs(
                    name=rule_name,
                    rule_type="Basic",
                    priority=priority,
                    http_listener=network.SubResourceArgs(id=part("httpListeners", listener)),
                    **{key: network.SubResourceArgs(id=part(*target)) for key, target in targets.items()},
                )
                for rule_name, priority, listener, targets in (
                    (
                        "chat",
                        100,
                        HTTPS_LISTENER,
                        {
                            "backend_address_pool": ("backendAddressPools", BACKEND_POOL),
                            "backend_http_settings": ("backendHttpSettingsCollection", BACKEND_SETTINGS),
                        },
                    ),
                    (
                        "http-redirect",
                        200,
                        HTTP_LISTENER,
                        {"redirect_configuration": ("redirectConfigurations", REDIRECT)},
                    ),
                )
            ],
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, *args.depends_on]),
        )


def certificate_scope(key_vault_id: pulumi.Input[str], secret_id: str) -> pulumi.Output[str]:
    """The role's scope: the certificate's secret in this stack's vault (`<vault id>/secrets/<name>`), not the vault.

    A certificate imported into Key Vault is readable as a secret of the same name, which is what the
    gateway fetches (key-vault-certs.md: "Key Vault Secrets User" for the identity).
    """
    return pulumi.Output.concat(key_vault_id, "/secrets/", certificate_secret_name(secret_id))


def certificate_secret_name(secret_id: str) -> str:
    """`https://kv.vault.azure.net/secrets/chat-tls/` -> `chat-tls`."""
    return secret_id.rstrip("/").rsplit("/", 1)[-1]


def _part_ids(context: StackContext, resource_group_name: pulumi.Input[str], gateway_name: str):
    """`part("probes", "x")`: the ARM id of a part of the gateway, which its other parts reference."""

    def part(collection: str, item: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(
            "/subscriptions/",
            context.subscription_id,
            "/resourceGroups/",
            resource_group_name,
            f"/providers/Microsoft.Network/applicationGateways/{gateway_name}/{collection}/{item}",
        )

    return part
