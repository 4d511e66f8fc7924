"""PostgreSQL flexible server: Entra-only auth, pgvector allow-listed, reachable only privately.

Network mode: public-access mode with public network access Disabled plus a private endpoint, rather
than VNet injection. Every data service then follows the same pattern (one endpoint subnet, one DNS
helper), no subnet has to be dedicated and delegated to PostgreSQL, and the choice can be revisited
without recreating the server (VNet injection is fixed at creation). See README "Why a private endpoint".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native.dbforpostgresql as dbforpostgresql

from components.config import EntraAdmin, PostgresConfig
from components.context import StackContext
from components.private_endpoint import POSTGRES, PrivateAccess, connect_privately

# Server parameters we set, applied one at a time (the server rejects concurrent updates).
SERVER_PARAMETERS = {
    "azure.extensions": "VECTOR",  # allow-list pgvector; the app runs CREATE EXTENSION in its migrations
    "require_secure_transport": "ON",  # TLS only (the default, made explicit so it cannot drift)
}


@dataclass
class PostgresArgs:
    context: StackContext
    settings: PostgresConfig  # version, SKU, storage, backups, HA, database name, extra Entra admins
    access: PrivateAccess  # resource group, endpoint subnet, DNS zones, workspace
    protect: bool  # against `pulumi destroy` and replacement (prod): the server holds the data
    # The workload identity that owns the schema (the app runs its own migrations): an Entra admin.
    owner_principal_id: pulumi.Input[str]
    owner_principal_name: pulumi.Input[str]
    # Other workload identities that sign in as Entra admins (e.g. the ingestion job): (object id, name).
    workload_admins: Sequence[tuple[pulumi.Input[str], pulumi.Input[str]]] = field(default_factory=tuple)


class PostgresDatabase(pulumi.ComponentResource):
    server_id: pulumi.Output[str]
    host: pulumi.Output[str]
    database_name: str

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:data:PostgresDatabase", name, None, opts)
        context = args.context
        settings = args.settings
        server = dbforpostgresql.Server(
            f"{name}-server",
            server_name=context.unique_name("psql", max_length=63),
            resource_group_name=args.access.resource_group_name,
            location=context.location,
            version=settings.version,
            sku=dbforpostgresql.SkuArgs(name=settings.sku_name, tier=settings.tier),
            storage=dbforpostgresql.StorageArgs(storage_size_gb=settings.storage_size_gb, auto_grow="Enabled"),
            backup=dbforpostgresql.BackupArgs(
                backup_retention_days=settings.backup_retention_days,
                geo_redundant_backup="Enabled" if settings.geo_redundant_backup else "Disabled",
            ),
            high_availability=dbforpostgresql.HighAvailabilityArgs(
                mode="ZoneRedundant" if settings.high_availability else "Disabled"
            ),
            # Entra only: no administrator login or password exists at all.
            auth_config=dbforpostgresql.AuthConfigArgs(
                active_directory_auth="Enabled", password_auth="Disabled", tenant_id=context.tenant_id
            ),
            network=dbforpostgresql.NetworkArgs(public_network_access="Disabled"),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.server_id = server.id
        self.host = server.fully_qualified_domain_name
        self.database_name = settings.database_name

        owner = _workload_admin(args.owner_principal_id, args.owner_principal_name)
        previous: pulumi.Resource = server
        workloads = [_workload_admin(object_id, principal) for object_id, principal in args.workload_admins]
        for index, admin in enumerate((owner, *workloads, *settings.extra_admins)):
            previous = self._administrator(f"{name}-admin-{index}", server, args, admin, after=previous)
        for parameter, value in SERVER_PARAMETERS.items():
            previous = dbforpostgresql.Configuration(
                f"{name}-{parameter.replace('.', '-').replace('_', '-')}",
                configuration_name=parameter,
                value=value,
                source="user-override",
                server_name=server.name,
                resource_group_name=args.access.resource_group_name,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
            )
        dbforpostgresql.Database(
            f"{name}-database",
            database_name=settings.database_name,
            server_name=server.name,
            resource_group_name=args.access.resource_group_name,
            charset="UTF8",
            collation="en_US.utf8",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
        )
        connect_privately(
            f"{name}-server",
            target=POSTGRES,
            service=server,
            access=args.access,
            location=context.location,
            tags=context.tags,
            parent=self,
        )
        self.register_outputs({"server_id": self.server_id, "host": self.host})

    def _administrator(
        self,
        resource_name: str,
        server: dbforpostgresql.Server,
        args: PostgresArgs,
        admin: EntraAdmin,
        after: pulumi.Resource,
    ) -> dbforpostgresql.Administrator:
        return dbforpostgresql.Administrator(
            resource_name,
            object_id=admin.object_id,
            principal_name=admin.principal_name,
            principal_type=admin.principal_type,
            tenant_id=args.context.tenant_id,
            server_name=server.name,
            resource_group_name=args.access.resource_group_name,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after]),
        )


def _workload_admin(object_id: pulumi.Input[str], principal_name: pulumi.Input[str]) -> EntraAdmin:
    """A managed identity as an Entra admin (managed identities sign in as service principals)."""
    return EntraAdmin(object_id=object_id, principal_name=principal_name, principal_type="ServicePrincipal")
