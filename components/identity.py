"""User-assigned managed identities: one per workload, so each gets only the roles it needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.managedidentity as managedidentity

from components.context import StackContext


@dataclass(frozen=True)
class WorkloadIdentity:
    """What other components need to know about an identity."""

    name: pulumi.Output[str]
    id: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    client_id: pulumi.Output[str]


@dataclass
class IdentitiesArgs:
    context: StackContext
    resource_group_name: pulumi.Input[str]
    workloads: Sequence[str]  # e.g. ("app", "ingestion")


class Identities(pulumi.ComponentResource):
    """`identities[workload]` is that workload's user-assigned identity (it survives app redeploys)."""

    identities: dict[str, WorkloadIdentity]

    def __init__(self, name: str, args: IdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:identity:Identities", name, None, opts)
        self.identities = {}
        for workload in args.workloads:
            identity = managedidentity.UserAssignedIdentity(
                f"{name}-{workload}",
                resource_name_=args.context.name("id", workload),
                resource_group_name=args.resource_group_name,
                location=args.context.location,
                tags=dict(args.context.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.identities[workload] = WorkloadIdentity(
                name=identity.name, id=identity.id, principal_id=identity.principal_id, client_id=identity.client_id
            )
        self.register_outputs({workload: ident.id for workload, ident in self.identities.items()})

    def __getitem__(self, workload: str) -> WorkloadIdentity:
        return self.identities[workload]
