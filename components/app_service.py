"""App Service: the chat app as a Linux container from the private registry, VNet-integrated.

The web app pulls its image with a user-assigned identity (no registry password), sends all outbound
traffic and image pulls through the VNet, and reads secrets only as Key Vault references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native.web as web

from components.config import AppServiceConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.identity import WorkloadIdentity
from components.private_endpoint import WEB_APP, PrivateAccess, private_endpoint

# The port the container listens on (apps/chat/Dockerfile reads $PORT).
CONTAINER_PORT = "8000"
# App Service authentication reads the client assertion from the identity this setting names
# (the app registration's federated credential) instead of a client secret.
MANAGED_IDENTITY_ASSERTION_SETTING = "OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID"
# Behind Application Gateway, requests arrive with the app's own host name (the gateway overrides it so that
# App Service routes them) and the host the user typed in X-Original-Host, one of the headers the gateway adds
# (application-gateway/how-application-gateway-works.md, "Modifications to the request"). App Service
# authentication builds its sign-in redirects from this header when told to (app-service/
# overview-app-gateway-integration.md, "Authentication": forwardProxy convention Custom).
GATEWAY_HOST_HEADER = "X-Original-Host"
GATEWAY_PROTO_HEADER = "X-Forwarded-Proto"


def key_vault_reference(secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """App Service resolves this with the app's identity; the value never appears in app settings."""
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


@dataclass
class ChatWebAppArgs:
    context: StackContext
    settings: AppServiceConfig  # plan SKU and size, image, health check path, sign-in app registration
    resource_group_name: pulumi.Input[str]
    integration_subnet_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    identity: WorkloadIdentity
    registry_login_server: pulumi.Input[str]
    postgres_host: pulumi.Input[str]
    postgres_database: str
    # The model endpoint (the API Management gateway); None leaves the app in search-only mode.
    openai_endpoint: pulumi.Input[str] | None = None
    # Extra plain app settings (apps/chat/README.md lists them all).
    app_settings: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Setting name -> Key Vault secret URI; rendered as Key Vault references, never as values.
    secret_settings: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # What must exist before the app first starts so that those references resolve (KeyVault.references_ready):
    # a reference that fails at start is used as its literal text and retried only about once a day
    # (app-service/app-service-key-vault-references.md).
    secret_settings_ready: Sequence[pulumi.Resource] = field(default_factory=list)
    # aichat:ingress.mode applicationGateway: public network access off for the site and its SCM site, a
    # private endpoint (group `sites`) in `private_access`'s subnet for the gateway to reach it, and sign-in
    # redirects built from the gateway's host name. False: the site takes internet traffic behind sign-in.
    behind_gateway: bool = False
    private_access: PrivateAccess | None = None  # where the private endpoint goes (behind_gateway only)
    # What must exist before the app first starts (egress routes and firewall rules, for example).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


def keyless_database_settings(
    identity: WorkloadIdentity, postgres_host: pulumi.Input[str], postgres_database: str
) -> dict[str, pulumi.Input[str]]:
    """What any container of the app (web app or job) needs to reach PostgreSQL with its identity's token."""
    return {
        "AZURE_CLIENT_ID": identity.client_id,  # which identity DefaultAzureCredential uses
        "POSTGRES_HOST": postgres_host,
        "POSTGRES_DATABASE": postgres_database,
        "POSTGRES_USER": identity.name,  # Entra principal name = the identity's name
        "POSTGRES_SSLMODE": "require",
    }


def chat_app_settings(args: ChatWebAppArgs) -> dict[str, pulumi.Input[str]]:
    """The app's environment in Azure: keyless everywhere, identity picked by client id."""
    settings: dict[str, pulumi.Input[str]] = {
        "WEBSITES_PORT": CONTAINER_PORT,
        **keyless_database_settings(args.identity, args.postgres_host, args.postgres_database),
        # Identity comes from App Service authentication's headers (configured below), never from callers.
        "AUTH_MODE": "app_service",
        MANAGED_IDENTITY_ASSERTION_SETTING: args.identity.client_id,
    }
    if args.openai_endpoint is not None:
        settings["AZURE_OPENAI_ENDPOINT"] = args.openai_endpoint
    settings.update(args.app_settings)
    settings.update({key: key_vault_reference(uri) for key, uri in args.secret_settings.items()})
    return settings


class ChatWebApp(pulumi.ComponentResource):
    url: pulumi.Output[str]
    web_app_id: pulumi.Output[str]
    default_host_name: pulumi.Output[str]
    # Behind the gateway: the site's private endpoint and its DNS records, which the gateway's backend
    # resolves (it caches DNS answers, so it must come after them); empty otherwise.
    reachable_privately: list[pulumi.Resource]

    def __init__(self, name: str, args: ChatWebAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:app:ChatWebApp", name, None, opts)
        context = args.context
        settings = args.settings
        if args.behind_gateway and args.private_access is None:
            raise ValueError(f"{name}: behind_gateway needs private_access (where the site's private endpoint goes)")
        plan = web.AppServicePlan(
            f"{name}-plan",
            name=context.name("asp"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            kind="linux",
            reserved=True,  # Linux
            sku=web.SkuDescriptionArgs(name=settings.sku_name, capacity=settings.instance_count),
            zone_redundant=settings.zone_redundant,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        image = pulumi.Output.concat("DOCKER|", args.registry_login_server, "/", settings.image)
        app_settings = chat_app_settings(args)
        site = web.WebApp(
            f"{name}-site",
            name=context.lasting_name("app", max_length=60),
            resource_group_name=args.resource_group_name,
            location=context.location,
            kind="app,linux,container",
            server_farm_id=plan.id,
            https_only=True,
            identity=web.ManagedServiceIdentityArgs(type="UserAssigned", user_assigned_identities=[args.identity.id]),
            key_vault_reference_identity=args.identity.id,
            virtual_network_subnet_id=args.integration_subnet_id,
            # Everything the app sends, and every image pull, goes through the VNet to private endpoints.
            outbound_vnet_routing=web.OutboundVnetRoutingArgs(application_traffic=True, image_pull_traffic=True),
            # Behind the gateway nothing reaches the site from the internet: "app access" off applies to the main
            # site and the SCM (Kudu) site alike (app-service/overview-access-restrictions.md, "App access"); the
            # private endpoint is the only way in. Session affinity then follows the gateway's host name
            # (overview-app-gateway-integration.md, "Session affinity").
            public_network_access="Disabled" if args.behind_gateway else None,
            client_affinity_proxy_enabled=True if args.behind_gateway else None,
            site_config=web.SiteConfigArgs(
                linux_fx_version=image,
                acr_use_managed_identity_creds=True,
                acr_user_managed_identity_id=args.identity.client_id,
                always_on=True,
                http20_enabled=True,
                min_tls_version="1.2",
                scm_min_tls_version="1.2",
                ftps_state="Disabled",
                health_check_path=settings.health_check_path,
                app_settings=[web.NameValuePairArgs(name=key, value=value) for key, value in app_settings.items()],
                # Belt and braces behind the gateway, as Microsoft's baseline does (web-app.bicep sets public access
                # off in siteConfig too); were public access turned on again, no rule lets anyone in. Traffic
                # through the private endpoint skips access restrictions (overview-private-endpoint.md).
                public_network_access="Disabled" if args.behind_gateway else None,
                ip_security_restrictions_default_action="Deny" if args.behind_gateway else None,
                scm_ip_security_restrictions_default_action="Deny" if args.behind_gateway else None,
            ),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.secret_settings_ready, *args.depends_on]),
        )
        self.reachable_privately = []
        if args.behind_gateway and args.private_access is not None:
            connection = private_endpoint(
                f"{name}-site",
                target=WEB_APP,
                service_id=site.id,
                subnet_id=args.private_access.subnet_id,
                resource_group_name=args.resource_group_name,
                location=context.location,
                dns_zone_ids=args.private_access.dns_zone_ids,
                tags=context.tags,
                parent=self,
            )
            self.reachable_privately = connection.resources
        self._require_sign_in(name, site, args)
        # Basic (user/password) publishing credentials off for FTP and for the SCM (Kudu) site.
        for publishing_policy, channel in ((web.WebAppFtpAllowed, "ftp"), (web.WebAppScmAllowed, "scm")):
            publishing_policy(
                f"{name}-{channel}-basic-auth",
                name=site.name,
                resource_group_name=args.resource_group_name,
                allow=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
        send_to_workspace(f"{name}-plan", resource=plan, workspace_id=args.workspace_id, parent=self, logs=False)
        send_to_workspace(f"{name}-site", resource=site, workspace_id=args.workspace_id, parent=self)
        self.web_app_id = site.id
        self.default_host_name = site.default_host_name
        self.url = pulumi.Output.concat("https://", site.default_host_name)
        self.register_outputs({"url": self.url, "web_app_id": self.web_app_id})

    def _require_sign_in(self, name: str, site: web.WebApp, args: ChatWebAppArgs) -> web.WebAppAuthSettingsV2:
        """App Service authentication in front of the app: every request is signed in with Entra ID.

        The platform then sets the X-MS-CLIENT-PRINCIPAL headers the app's access control reads (and strips
        any a caller sends). The app registration trusts the app's managed identity as a federated
        credential, so sign-in needs no client secret either.
        """
        tenant_issuer = pulumi.Output.concat("https://login.microsoftonline.com/", args.context.tenant_id, "/v2.0")
        client_id = args.settings.sign_in_client_id
        return web.WebAppAuthSettingsV2(
            f"{name}-sign-in",
            name=site.name,
            resource_group_name=args.resource_group_name,
            platform=web.AuthPlatformArgs(enabled=True),
            global_validation=web.GlobalValidationArgs(
                require_authentication=True,
                unauthenticated_client_action="RedirectToLoginPage",
                redirect_to_provider="azureactivedirectory",
                # The gateway's health probe carries no sign-in: it must reach the app's health path itself,
                # or it would only ever see the redirect to the sign-in page. The path answers with status only
                # (globalValidation.excludedPaths: app-service/configure-authentication-file-based.md).
                excluded_paths=[args.settings.health_check_path] if args.behind_gateway else None,
            ),
            identity_providers=web.IdentityProvidersArgs(
                azure_active_directory=web.AzureActiveDirectoryArgs(
                    enabled=True,
                    registration=web.AzureActiveDirectoryRegistrationArgs(
                        client_id=client_id,
                        open_id_issuer=tenant_issuer,
                        client_secret_setting_name=MANAGED_IDENTITY_ASSERTION_SETTING,
                    ),
                )
            ),
            login=web.LoginArgs(token_store=web.TokenStoreArgs(enabled=True)),
            http_settings=web.HttpSettingsArgs(require_https=True, forward_proxy=_forward_proxy(args)),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _forward_proxy(args: ChatWebAppArgs) -> web.ForwardProxyArgs | None:
    """Behind the gateway, sign-in redirects (and the redirect URI Entra checks) use the host the user opened."""
    if not args.behind_gateway:
        return None
    return web.ForwardProxyArgs(
        convention=web.ForwardProxyConvention.CUSTOM,
        custom_host_header_name=GATEWAY_HOST_HEADER,
        custom_proto_header_name=GATEWAY_PROTO_HEADER,
    )
