"""Private DNS zones, each linked to the VNet, so private endpoints resolve from inside the network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.privatedns as privatedns

from components.context import StackContext


@dataclass
class PrivateDnsZonesArgs:
    context: StackContext
    resource_group_name: pulumi.Input[str]
    vnet_id: pulumi.Input[str]
    zone_names: Sequence[str]


class PrivateDnsZones(pulumi.ComponentResource):
    """One private zone per name in `zone_names`; `zone_ids[zone_name]` feeds private endpoint DNS groups."""

    zone_ids: dict[str, pulumi.Output[str]]
    zone_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PrivateDnsZonesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:network:PrivateDnsZones", name, None, opts)
        self.zone_ids = {}
        self.zone_names = {}
        for zone_name in dict.fromkeys(args.zone_names):  # keep order, drop repeats
            short = zone_name.removeprefix("privatelink.").replace(".", "-")
            zone = privatedns.PrivateZone(
                f"{name}-{short}",
                private_zone_name=zone_name,
                resource_group_name=args.resource_group_name,
                location="global",
                tags=dict(args.context.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            privatedns.VirtualNetworkLink(
                f"{name}-{short}-link",
                virtual_network_link_name="vnet-link",
                private_zone_name=zone.name,
                resource_group_name=args.resource_group_name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=args.vnet_id),
                registration_enabled=False,
                tags=dict(args.context.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.zone_ids[zone_name] = zone.id
            self.zone_names[zone_name] = zone.name
        self.register_outputs({"zone_ids": self.zone_ids})
