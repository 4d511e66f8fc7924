"""Skip azure-native's aliases for API-versioned type names, which no stack of this project can hold.

pulumi-azure-native v1 and v2 named resource types after API versions (`azure-native:web/v20220301:WebApp`).
v3 keeps an alias for every such name on every resource, so that old stacks still match their state: about
twenty per resource. The SDK turns each alias into a URN when the resource is declared, which is most of the
time `pulumi preview` spends in this program (benchmarks/program_startup.py). This project has only ever used
v3's unversioned names, so those aliases can never match anything here. Aliases for real renames, such as
`azure-native:network:PrivateZone` -> `azure-native:privatedns:PrivateZone`, are kept.

`moved_from` is for the other kind of alias: a resource this project moved to another component.
"""

from __future__ import annotations

import copy
import re

import pulumi

_API_VERSIONED_TYPE = re.compile(r"^azure-native:[a-z0-9]+/v\d{8}[a-z]*:")  # e.g. v20200214privatepreview


def is_api_versioned_alias(alias: object) -> bool:
    return (
        isinstance(alias, pulumi.Alias)
        and isinstance(alias.type_, str)
        and bool(_API_VERSIONED_TYPE.match(alias.type_))
    )


def without_api_versioned_aliases(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """A stack transformation: the resource unchanged but for the API-versioned type aliases."""
    aliases = args.opts.aliases
    if not aliases or not any(is_api_versioned_alias(a) for a in aliases):
        return None
    opts = copy.copy(args.opts)  # ResourceOptions.merge would append to the aliases, not replace them
    opts.aliases = [alias for alias in aliases if not is_api_versioned_alias(alias)]
    return pulumi.ResourceTransformationResult(props=args.props, opts=opts)


def moved_from(parent_type: str, parent_name: str, *, name: str | None = None) -> pulumi.Alias:
    """Where a resource was declared before it moved to another component: the parent's type token and
    name (a top-level component), and its own old name if that changed too. Stacks created earlier hold it
    under its old URN; with this alias `pulumi up` adopts it there instead of deleting and recreating it.
    An alias that matches nothing (a new stack) is ignored."""
    old_parent = pulumi.create_urn(parent_name, parent_type)
    return pulumi.Alias(parent=old_parent) if name is None else pulumi.Alias(name=name, parent=old_parent)
