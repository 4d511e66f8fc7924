"""The one shape of every public IP the stack declares: Standard, static, IPv4, regional, in the given zones."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_azure_native.network as network

from components.context import StackContext


def standard_public_ip(
    resource_name: str,
    *,
    context: StackContext,
    name_part: str,
    resource_group_name: pulumi.Input[str],
    zones: Sequence[str],
    parent: pulumi.Resource,
    dns_label: pulumi.Input[str] | None = None,
) -> network.PublicIPAddress:
    """`pip-<prefix>-<env>-<name_part>`. Application Gateway v2, Azure Firewall and zone-pinned API Management all
    require the Standard SKU with static allocation (application-gateway/configuration-frontend-ip.md,
    firewall/firewall-faq.yml, api-management/api-management-howto-ip-addresses.md); Regional is the tier
    a VNet's resources take; `zones` empty means no zone pinning. `dns_label` gives it an
    Azure DNS name (`<label>.<region>.cloudapp.azure.com`)."""
    return network.PublicIPAddress(
        resource_name,
        public_ip_address_name=context.name("pip", name_part),
        resource_group_name=resource_group_name,
        location=context.location,
        sku=network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
        public_ip_allocation_method="Static",
        public_ip_address_version="IPv4",
        zones=list(zones) or None,
        dns_settings=network.PublicIPAddressDnsSettingsArgs(domain_name_label=dns_label) if dns_label else None,
        tags=dict(context.tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
