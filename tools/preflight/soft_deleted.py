"""Soft-deleted resources holding this stack's names (check 4).

A deleted Key Vault, OpenAI account or API Management service keeps its globally unique name until
it is purged. Only a name the stack uses now blocks `pulumi up` (the program would recreate it); a
name from an earlier incarnation of the stack does not, since each incarnation gets new names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from components.config import StackConfig
from tools.preflight.arm import Arm
from tools.preflight.checks import guarded
from tools.preflight.facts import SoftDeleted
from tools.preflight.report import Row, Verdict
from tools.preflight.stack import (
    StackOutputs,
    api_management_prefixes,
    key_vault_prefixes,
    openai_account_prefixes,
)

CHECK = "soft-deleted names"


@dataclass(frozen=True)
class DeletedKind:
    label: str  # as SoftDeleted.kind
    read: Callable[[Arm], list[SoftDeleted]]
    prefixes: Callable[[StackConfig], tuple[str, ...]]
    recover: Callable[[SoftDeleted], str | None]  # the command that restores it, if there is one
    purge: Callable[[SoftDeleted], str]


def _openai_account_arguments(deleted: SoftDeleted) -> str:
    return f"--name {deleted.name} --resource-group {deleted.resource_group} --location {deleted.location}"


KINDS = (
    DeletedKind(
        label="Key Vault",
        read=Arm.deleted_key_vaults,
        prefixes=key_vault_prefixes,
        recover=lambda d: f"az keyvault recover --name {d.name}",
        purge=lambda d: f"az keyvault purge --name {d.name} --location {d.location}",
    ),
    DeletedKind(
        label="OpenAI account",
        read=Arm.deleted_openai_accounts,
        prefixes=openai_account_prefixes,
        recover=lambda d: f"az cognitiveservices account recover {_openai_account_arguments(d)}",
        purge=lambda d: f"az cognitiveservices account purge {_openai_account_arguments(d)}",
    ),
    DeletedKind(
        label="API Management service",
        read=Arm.deleted_api_management_services,
        prefixes=api_management_prefixes,
        recover=lambda d: None,  # no CLI command: a new service with `restore: true` brings it back
        purge=lambda d: f"az apim deletedservice purge --service-name {d.name} --location {d.location}",
    ),
)


def soft_deleted_rows(config: StackConfig, arm: Arm, outputs: StackOutputs) -> list[Row]:
    rows: list[Row] = []
    for kind in KINDS:
        rows += guarded(CHECK, f"{kind.label}s", lambda kind=kind: _rows_of(kind, config, arm, outputs))
    return rows


def _rows_of(kind: DeletedKind, config: StackConfig, arm: Arm, outputs: StackOutputs) -> list[Row]:
    prefixes = kind.prefixes(config)
    ours = [d for d in kind.read(arm) if d.name.lower().startswith(tuple(p.lower() for p in prefixes))]
    if not ours:
        detail = f"no soft-deleted {kind.label} holds a name of this stack ({', '.join(p + '*' for p in prefixes)})"
        return [Row(CHECK, f"{kind.label}s", Verdict.PASS, detail)]
    return [_row(kind, deleted, outputs, config.stack) for deleted in ours]


def _row(kind: DeletedKind, deleted: SoftDeleted, outputs: StackOutputs, stack: str) -> Row:
    until = f"until {deleted.purge_date}" if deleted.purge_date else "until it is purged"
    purge = None if deleted.purge_protected else kind.purge(deleted)
    if deleted.name.lower() in {name.lower() for name in outputs.names_in_use}:
        detail = f"pulumi up would recreate {deleted.name} but a soft-deleted {kind.label} holds it {until}"
        return Row(CHECK, deleted.name, Verdict.FAIL, detail, _remedy(stack, kind.recover(deleted), purge))
    release = f"purge to release it: {purge}" if purge else f"purge protection is on: Azure releases it {until}"
    detail = (
        f"soft-deleted {kind.label} from an earlier incarnation of this stack does not block (names are per "
        f"incarnation; the names in use come from {outputs.source}); {release}"
    )
    return Row(CHECK, deleted.name, Verdict.PASS, detail)


# A destroy that stopped part-way leaves the stack's incarnation in its state, so `pulumi up` would reuse the
# names; replacing the incarnation gives every global name a new suffix (components/context.py).
def _new_incarnation(stack: str) -> str:
    urn = f"urn:pulumi:{stack}::aichat::random:index/randomString:RandomString::incarnation"
    return f"start a new incarnation with new names: pulumi up --replace '{urn}'"


def _remedy(stack: str, recover: str | None, purge: str | None) -> str:
    choices = [_new_incarnation(stack)]
    if recover:
        choices.append(f"restore it: {recover}, then `pulumi refresh`")
    if purge:
        choices.append(f"purge it (its data is lost): {purge}")
    return " or ".join(choices)
