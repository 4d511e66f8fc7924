"""The ingestion job: the app image run once as an Azure Container Instances task inside the VNet.

It runs `python -m apps.chat ingest <documentPaths>` (the app applies its migrations first) against
PostgreSQL with its own user-assigned identity's Entra token; the same identity pulls the image from
the registry, so no registry password exists. It reaches the registry, PostgreSQL and the gateway
through their private endpoints from the `jobs` subnet (delegated to Container Instances).

Run again on change: the container group's name ends with a hash of the image and the document
paths, so a new image tag (every commit gets one) or a different document list creates a new group,
which runs once (restart policy Never), and Pulumi deletes the old one. Nothing changes otherwise.

Logs: a diagnostic setting sends the group's logs to Log Analytics. The group's own `diagnostics`
block would need the workspace's shared key; the diagnostic setting needs no key at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native.containerinstance as containerinstance

from components.app_service import keyless_database_settings
from components.config import IngestionConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace
from components.identity import WorkloadIdentity

CONTAINER_NAME = "ingest"
CONTAINER_GROUP_LOG_CATEGORIES = ("ContainerInstanceLog", "ContainerEvent")


def ingest_command(document_paths: Sequence[str]) -> list[str]:
    """Each listed folder is a collection; `--sync` removes its documents whose files left the image, so the
    database holds exactly what this image ships. `--` keeps a path that starts with `-` a path."""
    return ["python", "-m", "apps.chat", "ingest", "--sync", "--", *document_paths]


def run_fingerprint(image: str, document_paths: Sequence[str]) -> str:
    """8 hex digits that change whenever the job should run again (new image or document source)."""
    return hashlib.sha256("\n".join([image, *document_paths]).encode()).hexdigest()[:8]


@dataclass
class IngestionJobArgs:
    context: StackContext
    settings: IngestionConfig  # the document paths and the container's CPU and memory
    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # the `jobs` subnet, delegated to Microsoft.ContainerInstance/containerGroups
    workspace_id: pulumi.Input[str]
    identity: WorkloadIdentity  # needs AcrPull on the registry and a PostgreSQL Entra admin entry
    registry_login_server: pulumi.Input[str]
    image: str  # repository:tag inside the registry, the same image the web app runs
    postgres_host: pulumi.Input[str]
    postgres_database: str
    # The model endpoint (the API Management gateway) for embeddings; None ingests for text search only.
    openai_endpoint: pulumi.Input[str] | None = None
    # Extra plain settings for the app's CLI (apps/chat/settings.py), e.g. EMBEDDING_MODEL.
    app_settings: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # What must exist before the job starts (its role assignments, the database), or the first run fails.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class IngestionJob(pulumi.ComponentResource):
    container_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: IngestionJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:jobs:IngestionJob", name, None, opts)
        context = args.context
        settings = args.settings
        environment = keyless_database_settings(args.identity, args.postgres_host, args.postgres_database)
        if args.openai_endpoint is not None:
            environment["AZURE_OPENAI_ENDPOINT"] = args.openai_endpoint
        environment.update(args.app_settings)
        group = containerinstance.ContainerGroup(
            f"{name}-group",
            container_group_name=context.name("ci", "ingest", run_fingerprint(args.image, settings.document_paths)),
            resource_group_name=args.resource_group_name,
            location=context.location,
            os_type="Linux",
            sku="Standard",
            restart_policy="Never",  # a task: run once, keep the exit code and logs
            subnet_ids=[containerinstance.ContainerGroupSubnetIdArgs(id=args.subnet_id)],
            identity=containerinstance.ContainerGroupIdentityArgs(
                type="UserAssigned", user_assigned_identities=[args.identity.id]
            ),
            # Pull with the identity (AcrPull); no username, no password.
            image_registry_credentials=[
                containerinstance.ImageRegistryCredentialArgs(
                    server=args.registry_login_server, identity=args.identity.id
                )
            ],
            containers=[
                containerinstance.ContainerArgs(
                    name=CONTAINER_NAME,
                    image=pulumi.Output.concat(args.registry_login_server, "/", args.image),
                    command=ingest_command(settings.document_paths),
                    environment_variables=[
                        containerinstance.EnvironmentVariableArgs(name=key, value=value)
                        for key, value in environment.items()
                    ],
                    resources=containerinstance.ResourceRequirementsArgs(
                        requests=containerinstance.ResourceRequestsArgs(
                            cpu=settings.cpu, memory_in_gb=settings.memory_gb
                        )
                    ),
                )
            ],
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        # Container groups publish two log categories (no category group) and no exportable metrics.
        # Source: azure-compute-docs, container-instances/monitor-azure-container-instances-reference.md.
        send_to_workspace(
            f"{name}-group",
            resource=group,
            workspace_id=args.workspace_id,
            parent=self,
            metrics=False,
            log_categories=CONTAINER_GROUP_LOG_CATEGORIES,
        )
        self.container_group_name = group.name
        self.register_outputs({"container_group_name": self.container_group_name})
