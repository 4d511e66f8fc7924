"""Advisory rules: cost and hygiene. They warn in the plan and in `pulumi preview`; they never block.

SKU lists are per environment: dev and test stay cheap, prod gets the tiers with an SLA and zone
redundancy. A deliberate exception is fine - the warning makes it visible in review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import ADVISORY, PRODUCTION_ENVIRONMENTS, environment_of, prop, resource_rule, short_type

REQUIRED_TAGS = ("workload", "environment", "owner")


def _missing_tags(props: Mapping[str, Any], _args) -> list[str]:
    if prop(props, "location") is None:
        return []  # not a tracked ARM resource (role assignments, settings, child resources): no tags
    tags = prop(props, "tags", {})
    missing = [t for t in REQUIRED_TAGS if not prop(tags, t)] if isinstance(tags, Mapping) else list(REQUIRED_TAGS)
    return [f"tags {', '.join(missing)} are missing"] if missing else []


@dataclass(frozen=True)
class SkuPolicy:
    """Where a type keeps its SKU, and the SKUs allowed in non-production and production stacks."""

    path: str
    non_production: tuple[str, ...]
    production: tuple[str, ...]
    why: str


_PAY_AS_YOU_GO_MODELS = ("Standard", "GlobalStandard", "DataZoneStandard")

ALLOWED_SKUS: dict[str, SkuPolicy] = {
    "web:AppServicePlan": SkuPolicy(
        "sku.name",
        ("B1", "B2", "B3", "S1", "P0v3", "P1v3"),
        ("P1v3", "P2v3", "P3v3", "P1mv3", "P2mv3"),
        "prod needs Premium v3 for zone redundancy; dev stays at P1v3 or below",
    ),
    "dbforpostgresql:Server": SkuPolicy(
        "sku.tier",
        ("Burstable", "GeneralPurpose"),
        ("GeneralPurpose", "MemoryOptimized"),
        "Burstable has no zone-redundant high availability; MemoryOptimized is costly for dev",
    ),
    "keyvault:Vault": SkuPolicy(
        "properties.sku.name", ("standard",), ("standard", "premium"), "HSM-backed keys (premium) only in prod"
    ),
    "containerregistry:Registry": SkuPolicy(
        "sku.name", ("Premium",), ("Premium",), "private endpoints need the Premium registry SKU"
    ),
    "apimanagement:ApiManagementService": SkuPolicy(
        "sku.name",
        ("Developer",),
        ("Premium",),
        "Developer has no SLA and is for non-production only; Premium is costly outside prod",
    ),
    "cognitiveservices:Account": SkuPolicy("sku.name", ("S0",), ("S0",), "Azure OpenAI accounts are S0"),
    "cognitiveservices:Deployment": SkuPolicy(
        "sku.name",
        _PAY_AS_YOU_GO_MODELS,
        (*_PAY_AS_YOU_GO_MODELS, "ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"),
        "provisioned throughput is billed per hour whether used or not: prod only",
    ),
}


def _sku_not_allowed(props: Mapping[str, Any], args) -> list[str]:
    policy = ALLOWED_SKUS[short_type(args.resource_type)]
    environment = environment_of(props, args.urn)
    allowed = policy.production if environment in PRODUCTION_ENVIRONMENTS else policy.non_production
    sku = prop(props, policy.path)
    if sku is None or str(sku).lower() in {a.lower() for a in allowed}:
        return []
    return [f"{policy.path} {sku!r} is not in the {environment} list ({', '.join(allowed)}): {policy.why}"]


RULES = [
    resource_rule(
        "required-tags",
        types=None,  # every azure-native resource with a location (the ones Azure can tag)
        description=f"Every taggable resource carries the tags {', '.join(REQUIRED_TAGS)}, so cost reports and "
        "incident responders can tell what it belongs to and who owns it.",
        remediation="pass tags=dict(context.tags) to the resource; set the values under aichat:tags in the stack file",
        check=_missing_tags,
        level=ADVISORY,
    ),
    resource_rule(
        "allowed-skus-per-environment",
        types=sorted(ALLOWED_SKUS),
        description="SKUs come from the list allowed for the stack's environment (cheap in dev and test, "
        "SLA-backed and zone-redundant in prod).",
        remediation="pick a SKU from the environment's list in policy/rules/hygiene.py (ALLOWED_SKUS) in "
        "Pulumi.<stack>.yaml, or extend the list in a reviewed change",
        check=_sku_not_allowed,
        level=ADVISORY,
    ),
]
