"""Azure OpenAI checks per region: each configured model offered (and open), and quota for its capacity.

Both read the region's live models list. Quota joins a model's SKU to a line of the region's usages
through the SKU's `usageName` (case-insensitively: the names are not always `OpenAI.<Sku>.<model>`).
Capacity is in thousands of tokens per minute, in the config and in the usages alike.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence

from components.catalog import CLOSED_LIFECYCLES, CLOSING_SOON_DAYS, Catalog
from components.config import PROJECT, ModelDeploymentConfig, StackConfig
from tools.preflight.arm import Arm, ArmReadError
from tools.preflight.checks import guarded
from tools.preflight.facts import OfferedModel, OfferedSku, Usage
from tools.preflight.report import Row, Verdict
from tools.preflight.stack import StackOutputs, resource_group_name

OFFER = "model offer"
QUOTA = "quota"
QUOTA_REQUEST_URL = "https://aka.ms/oai/quotaincrease"
NEWER_MODEL_DOC = "docs/deploying.md, 'Moving to a newer model'"


def _subject(region: str, model: ModelDeploymentConfig) -> str:
    return f"{region}: {model.model_name} {model.model_version} {model.sku_name}"


def _find(offered: Sequence[OfferedModel], model: ModelDeploymentConfig) -> OfferedModel | None:
    return next((m for m in offered if (m.name, m.version) == (model.model_name, model.model_version)), None)


def _instance_keys(config: StackConfig, region: str) -> str:
    keys = [
        f"{PROJECT}:openai.instances[{i}]" for i, inst in enumerate(config.openai.instances) if inst.region == region
    ]
    return ", ".join(keys)


# ------------------------------------------------------------------------------------------------
# 2. Offered in each region, and still open to new deployments
# ------------------------------------------------------------------------------------------------


def offer_rows(config: StackConfig, arm: Arm, catalog: Catalog, today: datetime.date) -> list[Row]:
    rows: list[Row] = []
    for region in config.openai.regions:
        rows += guarded(
            OFFER,
            region,
            lambda region=region: [
                _offer_row(config, region, model, arm.openai_models(region), catalog, today)
                for model in config.openai.models
            ],
        )
    return rows


def _offer_row(
    config: StackConfig,
    region: str,
    model: ModelDeploymentConfig,
    offered: Sequence[OfferedModel],
    catalog: Catalog,
    today: datetime.date,
) -> Row:
    live = _find(offered, model)
    sku = live.sku(model.sku_name) if live else None
    if live is None or sku is None:
        return _not_offered(config, region, model, offered, live, catalog)
    return _lifecycle(region, model, live, sku, catalog, today)


def _not_offered(
    config: StackConfig,
    region: str,
    model: ModelDeploymentConfig,
    offered: Sequence[OfferedModel],
    live: OfferedModel | None,
    catalog: Catalog,
) -> Row:
    instead = _offered_instead(model, offered, live)
    detail = f"not offered: {region} does not offer {model.model_name} {model.model_version} on {model.sku_name}"
    choices = [f"move {_instance_keys(config, region)} to another region"]
    elsewhere = [
        r for r in catalog.regions_offering(model.model_name, model.model_version, model.sku_name) if r != region
    ]
    if elsewhere:
        choices[0] += f" (the catalogue lists {', '.join(elsewhere)})"
    if instead:
        detail += f"; it offers {'; '.join(instead)}"
        choices.insert(0, f"choose what {region} offers ({model.key}.version / .sku)")
    return Row(OFFER, _subject(region, model), Verdict.FAIL, detail, " or ".join(choices))


def _offered_instead(
    model: ModelDeploymentConfig, offered: Sequence[OfferedModel], live: OfferedModel | None
) -> list[str]:
    """What the region offers close to the configured model: this version on other SKUs, other versions on this SKU."""
    instead = []
    if live is not None and live.skus:
        instead.append(f"this version on {', '.join(sku.name for sku in live.skus)}")
    versions = sorted(m.version for m in offered if m.name == model.model_name and m.sku(model.sku_name))
    if versions:
        instead.append(f"{model.model_name} on {model.sku_name} in versions {', '.join(versions)}")
    return instead


def _lifecycle(
    region: str,
    model: ModelDeploymentConfig,
    live: OfferedModel,
    sku: OfferedSku,
    catalog: Catalog,
    today: datetime.date,
) -> Row:
    subject = _subject(region, model)
    retires = sku.deprecation_date or live.inference_ends
    entry = catalog.model_version(model.model_name, model.model_version)
    replacement = f" (Microsoft's replacement: {entry.replacement})" if entry and entry.replacement else ""
    newer = f"choose a newer model for {model.key}{replacement}; see {NEWER_MODEL_DOC}"
    if live.lifecycle in CLOSED_LIFECYCLES:
        detail = f"offered, but its lifecycle is {live.lifecycle}: no new deployments"
        return Row(OFFER, subject, Verdict.FAIL, detail, newer)
    if retires is not None and retires <= today:
        return Row(OFFER, subject, Verdict.FAIL, f"offered, but retired on {retires}", newer)
    if retires is not None and (retires - today).days < CLOSING_SOON_DAYS:
        detail = f"offered ({live.lifecycle}); retires on {retires}, {(retires - today).days} days from now"
        return Row(OFFER, subject, Verdict.WARN, detail, f"plan the move: {newer}")
    until = f", retires on {retires}" if retires else ""
    return Row(OFFER, subject, Verdict.PASS, f"offered ({live.lifecycle}{until})")


# ------------------------------------------------------------------------------------------------
# 3. Quota: what every instance in a region asks of a model, against what the subscription has left
# ------------------------------------------------------------------------------------------------


def quota_rows(config: StackConfig, arm: Arm, outputs: StackOutputs) -> list[Row]:
    rows: list[Row] = []
    for region in config.openai.regions:
        rows += guarded(QUOTA, region, lambda region=region: _quota_rows_in(config, arm, outputs, region))
    return rows


def _quota_rows_in(config: StackConfig, arm: Arm, outputs: StackOutputs, region: str) -> list[Row]:
    offered = arm.openai_models(region)
    usages = {usage.name.lower(): usage for usage in arm.usages(region)}
    held = _capacity_held_by_stack(config, arm, outputs, region)
    rows = []
    for model in config.openai.models:
        live = _find(offered, model)
        sku = live.sku(model.sku_name) if live else None
        if sku is not None:  # a model not offered here is the offer check's FAIL
            usage = usages.get(sku.usage_name.lower())
            rows.append(_quota_row(config, region, model, sku, usage, held[(model.model_name, model.sku_name)]))
    return rows


def _capacity_held_by_stack(config: StackConfig, arm: Arm, outputs: StackOutputs, region: str) -> Counter:
    """(model, SKU) -> capacity the stack's own deployments in `region` hold today.

    The usages count them as in use, yet redeploying the same config needs none of it anew.
    """
    held: Counter = Counter()
    for account in outputs.openai_accounts:
        if account.region != region:
            continue
        try:
            deployments = arm.deployments(resource_group_name(config), account.name)
        except ArmReadError as error:
            if error.status == 404:
                continue  # the account is gone (the soft-deleted check says more); it holds nothing
            raise
        for deployment in deployments:
            held[(deployment.model_name, deployment.sku_name)] += deployment.capacity
    return held


def _quota_row(
    config: StackConfig,
    region: str,
    model: ModelDeploymentConfig,
    sku: OfferedSku,
    usage: Usage | None,
    held: int,
) -> Row:
    subject = _subject(region, model)
    instances = [i for i in config.openai.instances if i.region == region]
    needed = sum(i.capacity_for(model) for i in instances)
    asked = " + ".join(f"{i.name} {i.capacity_for(model)}" for i in instances)
    if usage is None:
        detail = (
            f"no quota line {sku.usage_name} in {region}'s usages, so {needed}K TPM ({asked}) could not be compared"
        )
        return Row(
            QUOTA,
            subject,
            Verdict.WARN,
            detail,
            f"check the model's quota in the Foundry portal or {QUOTA_REQUEST_URL}",
        )
    available = usage.limit - usage.current + held
    own = f", {held:g} of it this stack's own deployments" if held else ""
    figures = f"limit {usage.limit:g}, in use {usage.current:g}{own}"
    if needed <= available:
        detail = f"needs {needed}K TPM ({asked}) of {usage.name}: {available:g}K available ({figures})"
        return Row(QUOTA, subject, Verdict.PASS, detail)
    detail = f"quota short: needs {needed}K TPM ({asked}) of {usage.name}, {available:g}K available ({figures})"
    remedy = (
        f"request {needed - available:g}K more {usage.name} in {region} at {QUOTA_REQUEST_URL}, or lower "
        f"{model.key}.capacity or the capacity.{model.role} override of {_instance_keys(config, region)}"
    )
    return Row(QUOTA, subject, Verdict.FAIL, detail, remedy)
