"""The stack's resource group: created first, so every other component (the workspace included) can use it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.resources as resources

from components.aliases import moved_from
from components.context import StackContext


@dataclass
class ResourceGroupArgs:
    context: StackContext  # the group's name, region and tags


class ResourceGroup(pulumi.ComponentResource):
    """One resource group per stack, `rg-<prefix>-<environment>`; everything else lives in it."""

    resource_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: ResourceGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:core:ResourceGroup", name, None, opts)
        # Until issue 15 the Network component created the group, as `network-rg`.
        created_by_network = moved_from("aichat:network:Network", "network", name="network-rg")
        context = args.context
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=context.name("rg"),
            location=context.location,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self, aliases=[created_by_network]),
        )
        self.resource_group_name = group.name
        self.register_outputs({"resource_group_name": self.resource_group_name})
