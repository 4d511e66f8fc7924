"""What the preflight knows about the stack besides its config: its names, and what it runs today.

Globally unique names (Key Vault, OpenAI accounts, API Management) are `{abbreviation}-{namePrefix}-
{environment}` cut to fit, then `-` and a suffix that changes with each incarnation of the stack
(components/context.py, `unique_name`). So every incarnation shares a name prefix, and only the
current incarnation's names, read from the stack outputs, can collide with a soft-deleted resource.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.config import StackConfig
from components.context import readable_name, unique_name_prefix

# Abbreviation and length limit of each unique name, as components/*.py pass them to `unique_name`.
KEY_VAULT = ("kv", 24)
API_MANAGEMENT = ("apim", 50)
OPENAI_ACCOUNT_LIMIT = 64


def _readable_name(config: StackConfig, abbreviation: str) -> str:
    """`kv-aichat-dev`, as StackContext.name makes it."""
    return readable_name(abbreviation, config.name_prefix, config.environment)


def _prefix(config: StackConfig, abbreviation: str, max_length: int) -> str:
    """What every incarnation's name shares: the unique name without its suffix (`kv-aichat-dev-`)."""
    return unique_name_prefix(_readable_name(config, abbreviation), max_length)


def key_vault_prefixes(config: StackConfig) -> tuple[str, ...]:
    return (_prefix(config, *KEY_VAULT),)


def api_management_prefixes(config: StackConfig) -> tuple[str, ...]:
    return (_prefix(config, *API_MANAGEMENT),)


def openai_account_prefixes(config: StackConfig) -> tuple[str, ...]:
    return tuple(_prefix(config, f"oai-{i.name}", OPENAI_ACCOUNT_LIMIT) for i in config.openai.instances)


def resource_group_name(config: StackConfig) -> str:
    return _readable_name(config, "rg")  # the program names its one resource group StackContext.name("rg")


@dataclass(frozen=True)
class OpenAiAccountInUse:
    name: str
    region: str


@dataclass(frozen=True)
class StackOutputs:
    """What the stack's current incarnation runs; empty for a stack never deployed."""

    names_in_use: frozenset[str]
    openai_accounts: tuple[OpenAiAccountInUse, ...]
    source: str  # where the outputs came from, for the report

    @staticmethod
    def of_new_stack(reason: str) -> StackOutputs:
        return StackOutputs(frozenset(), (), reason)


def _host_label(url: str) -> str:
    """`https://kv-aichat-dev-1a2b3c.vault.azure.net/` -> `kv-aichat-dev-1a2b3c`: the resource's name."""
    return (urlsplit(url).hostname or "").split(".")[0]


def parse_outputs(outputs: Mapping[str, Any], source: str) -> StackOutputs:
    """The output of `pulumi stack output --json`: keyVaultUri, gatewayUrl, openAiEndpoints."""
    accounts = tuple(
        OpenAiAccountInUse(_host_label(entry["endpoint"]), entry["region"])
        for entry in outputs.get("openAiEndpoints") or ()
    )
    urls = [outputs.get("keyVaultUri"), outputs.get("gatewayUrl")]
    names = {_host_label(url) for url in urls if url} | {account.name for account in accounts}
    return StackOutputs(frozenset(names), accounts, source)


def read_stack_outputs(stack: str, outputs_file: Path | None) -> StackOutputs:
    """From the --stack-outputs file, else from the Pulumi CLI when it is installed, else a new stack."""
    if outputs_file is not None:
        return parse_outputs(json.loads(outputs_file.read_text()), f"--stack-outputs {outputs_file}")
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return StackOutputs.of_new_stack("no pulumi CLI to read the stack outputs: treated as a new stack")
    result = subprocess.run(
        [pulumi, "stack", "output", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # a stack that does not exist yet is a new stack, not an error
    )
    if result.returncode != 0:
        first_line = (result.stderr.strip().splitlines() or ["no output"])[0]
        return StackOutputs.of_new_stack(f"`pulumi stack output` failed ({first_line}): treated as a new stack")
    return parse_outputs(json.loads(result.stdout or "{}"), "`pulumi stack output`")
