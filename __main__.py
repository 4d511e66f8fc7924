"""The private, keyless AI chat system on Azure.

Read top to bottom, this is the architecture picture in the README (docs/architecture.md explains the layers):
config first, then the resource group and the workspace every later resource sends its diagnostics to, the
network and the way out of it (egress), the data services behind private endpoints, the AI gateway, the app
that ties them together, and the way in to it (ingress; docs/network.md).
Each component gets the shared StackContext (naming, tags, tenant) and its own section of the config.
"""

import pulumi

from components.aliases import without_api_versioned_aliases
from components.app_service import ChatWebApp, ChatWebAppArgs
from components.build_agents import BuildAgents, BuildAgentsArgs
from components.config import load_stack_config
from components.context import StackContext
from components.egress import Egress, EgressArgs
from components.gateway import AiGateway, AiGatewayArgs
from components.identity import Identities, IdentitiesArgs
from components.ingestion_job import IngestionJob, IngestionJobArgs
from components.ingress import Ingress, IngressArgs
from components.key_vault import KeyVault, KeyVaultArgs
from components.network import Network, NetworkArgs
from components.observability import Observability, ObservabilityArgs
from components.openai import OpenAiAccounts, OpenAiAccountsArgs
from components.postgres import PostgresArgs, PostgresDatabase
from components.private_dns import PrivateDnsZones, PrivateDnsZonesArgs
from components.private_endpoint import ALL_DNS_ZONES, PrivateAccess
from components.registry import ContainerRegistry, ContainerRegistryArgs
from components.resource_group import ResourceGroup, ResourceGroupArgs

# This project's stacks never held azure-native's old API-versioned type names; skip their aliases (speed).
pulumi.runtime.register_stack_transformation(without_api_versioned_aliases)

config = load_stack_config()
context = StackContext.for_current_deployment(config)

resource_group_name = ResourceGroup("group", ResourceGroupArgs(context)).resource_group_name
observability = Observability("observability", ObservabilityArgs(context, config.observability, resource_group_name))
network = Network(
    "network",
    NetworkArgs(
        context,
        config.network,
        resource_group_name,
        workspace_id=observability.workspace_id,
        egress_through_firewall=config.egress.through_firewall,
    ),
)
# The way out: Azure Firewall and the routes to it (egress mode firewall), or nothing (default outbound access).
# Workloads that egress wait for `egress.ready`, so their first calls find the routes and rules in place.
egress = Egress(
    "egress",
    EgressArgs(
        context,
        config.egress,
        resource_group_name,
        workspace_id=observability.workspace_id,
        subnet_blocks=config.network.subnets,
        firewall_subnet_id=network.subnet_ids.get("firewall"),
        route_table_names=network.route_table_names,
    ),
)
dns = PrivateDnsZones(
    "dns",
    PrivateDnsZonesArgs(context, resource_group_name, network.vnet_id, zone_names=ALL_DNS_ZONES),
)
# Every data service: in this resource group, behind a private endpoint, with diagnostics to the workspace.
private_access = PrivateAccess(
    resource_group_name, network.subnet_ids["privateEndpoints"], dns.zone_ids, observability.workspace_id
)
identities = Identities("identities", IdentitiesArgs(context, resource_group_name, workloads=config.workloads))
app_identity = identities["app"]

key_vault = KeyVault(
    "keyvault",
    KeyVaultArgs(
        context,
        config.key_vault,
        private_access,
        protect=config.protect_stateful_resources,
        # App Service authentication's cookie and token-store keys: held here so every instance and
        # deployment slot shares them and they can be rotated (docs/operating.md).
        generated_secrets={"auth-encryption-key": 32, "auth-signing-key": 32},
        secret_reader_principal_id=app_identity.principal_id,
        # The ingress gateway reads its TLS certificate from this vault (docs/network.md, "The certificate").
        trusted_services_bypass=config.ingress.through_gateway,
    ),
)
registry = ContainerRegistry(
    "registry",
    ContainerRegistryArgs(
        context,
        config.registry,
        private_access,
        protect=config.protect_stateful_resources,
        pullers={workload: identities[workload].principal_id for workload in config.workloads},
        trusted_services_pull=config.ingestion.enabled,  # the job's container group pulls by identity
    ),
)
build_agents = BuildAgents(
    "build-agents",
    BuildAgentsArgs(
        context,
        config.registry.build_agent_pool,
        resource_group_name,
        registry.registry_name,
        network.subnet_ids["buildAgents"],
        depends_on=egress.ready,
    ),
)
postgres = PostgresDatabase(
    "postgres",
    PostgresArgs(
        context,
        config.postgres,
        private_access,
        protect=config.protect_stateful_resources,
        owner_principal_id=app_identity.principal_id,
        owner_principal_name=app_identity.name,
        workload_admins=[(identities[w].principal_id, identities[w].name) for w in config.job_workloads],
    ),
)
openai = OpenAiAccounts(
    "openai", OpenAiAccountsArgs(context, config.openai, private_access, production=config.is_production)
)
gateway = AiGateway(
    "gateway",
    AiGatewayArgs(
        context,
        config.gateway,
        resource_group_name,
        vnet_id=network.vnet_id,
        subnet_id=network.subnet_ids["apiManagement"],
        workspace_id=observability.workspace_id,
        app_insights_id=observability.app_insights_id,
        app_insights_connection_string=observability.app_insights_connection_string,
        accounts=openai.accounts,
        caller_client_ids=[identities[workload].client_id for workload in config.workloads],
        app_client_id=app_identity.client_id,
        depends_on=egress.ready,
    ),
)
chat = ChatWebApp(
    "chat",
    ChatWebAppArgs(
        context,
        config.app_service,
        resource_group_name,
        integration_subnet_id=network.subnet_ids["appService"],
        workspace_id=observability.workspace_id,
        identity=app_identity,
        registry_login_server=registry.login_server,
        postgres_host=postgres.host,
        postgres_database=postgres.database_name,
        secret_settings={
            "WEBSITE_AUTH_ENCRYPTION_KEY": key_vault.secret_uris["auth-encryption-key"],
            "WEBSITE_AUTH_SIGNING_KEY": key_vault.secret_uris["auth-signing-key"],
        },
        secret_settings_ready=key_vault.references_ready,
        openai_endpoint=gateway.gateway_url,
        app_settings={
            "CHAT_MODEL": config.openai.chat_model.deployment_name,
            "EMBEDDING_MODEL": config.openai.embedding_model.deployment_name,
        },
        # Behind the ingress gateway: public access off, a private endpoint for the gateway to reach.
        behind_gateway=config.ingress.through_gateway,
        private_access=private_access,
        depends_on=egress.ready,
    ),
)
# The way in: the web app's own endpoint (ingress mode public), or Application Gateway WAF_v2 in front of it.
ingress = Ingress(
    "ingress",
    IngressArgs(
        context,
        config.ingress,
        resource_group_name,
        workspace_id=observability.workspace_id,
        app_url=chat.url,
        backend_host_name=chat.default_host_name,
        health_check_path=config.app_service.health_check_path,
        subnet_id=network.subnet_ids.get("applicationGateway"),
        key_vault_id=key_vault.vault_id,
        depends_on=[*key_vault.reachable, *chat.reachable_privately],
    ),
)

if config.ingestion.enabled:
    ingestion = IngestionJob(
        "ingestion",
        IngestionJobArgs(
            context,
            config.ingestion,
            resource_group_name,
            image=config.app_service.image,  # the web app's
            subnet_id=network.subnet_ids["jobs"],
            workspace_id=observability.workspace_id,
            identity=identities["ingestion"],
            registry_login_server=registry.login_server,
            postgres_host=postgres.host,
            postgres_database=postgres.database_name,
            openai_endpoint=gateway.gateway_url,
            app_settings={"EMBEDDING_MODEL": config.openai.embedding_model.deployment_name},
            depends_on=[registry, postgres, gateway, *egress.ready],
        ),
    )
    pulumi.export("ingestionJobName", ingestion.container_group_name)

pulumi.export("resourceGroupName", resource_group_name)
pulumi.export("appUrl", ingress.url)
if ingress.public_ip is not None:
    # Point the host name's DNS at these (docs/network.md, "Custom domain").
    pulumi.export("ingressPublicIp", ingress.public_ip)
    pulumi.export("ingressFqdn", ingress.fqdn)
if egress.public_ip is not None:
    # The one address all egress leaves from, for partners' allow-lists.
    pulumi.export("egressPublicIp", egress.public_ip)
# The image the app (and the ingestion job) runs; pull request previews keep it, so they show only their own changes.
pulumi.export("appImage", config.app_service.image)
pulumi.export("registryLoginServer", registry.login_server)
pulumi.export("registryName", build_agents.registry_name)
if build_agents.agent_pool_name is not None:
    pulumi.export("buildAgentPoolName", build_agents.agent_pool_name)
pulumi.export("postgresHost", postgres.host)
pulumi.export("keyVaultUri", key_vault.vault_uri)
# The sign-in app registration trusts this identity as a federated credential (docs/deploying.md).
pulumi.export("appIdentityPrincipalId", app_identity.principal_id)
pulumi.export("gatewayUrl", gateway.gateway_url)
pulumi.export("openAiEndpoints", openai.endpoints)
