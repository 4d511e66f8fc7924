"""Command line of `python -m tools.preflight` (see tools/preflight/__init__.py for what it checks)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError

from components.catalog import CATALOG_DIR, load_catalog
from components.config import ConfigError, parse_stack_config, project_keys, run_date
from tools import preflight
from tools.offline import stack_config_values
from tools.preflight.arm import ARM_SCOPE, Arm, ArmReadError, EndpointRefused, resolve_endpoint
from tools.preflight.catalog_refresh import MODELS_FILE, refresh_offered_in, stack_regions
from tools.preflight.checks import provider_rows, role_assignment_rows
from tools.preflight.openai_checks import offer_rows, quota_rows
from tools.preflight.report import Row, Verdict, as_markdown, as_text, failed
from tools.preflight.soft_deleted import soft_deleted_rows
from tools.preflight.stack import read_stack_outputs, resource_group_name

EXIT_OK, EXIT_BLOCKED = 0, 1  # argparse exits with 2 on a usage error
SUBSCRIPTION_VARIABLES = ("AZURE_SUBSCRIPTION_ID", "ARM_SUBSCRIPTION_ID")
STACK_CONFIG, SIGN_IN = "stack config", "sign-in"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.preflight",
        description=preflight.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", help="the Pulumi stack, e.g. dev (reads Pulumi.STACK.yaml)")
    parser.add_argument("--subscription", help="the subscription to check (default: $AZURE_SUBSCRIPTION_ID)")
    parser.add_argument("--stack-outputs", type=Path, metavar="FILE", help="`pulumi stack output --json` saved")
    parser.add_argument(
        "--preview-identity",
        action="store_true",
        help="signed in as a read-only preview identity: lacking permission to create role assignments is a WARN",
    )
    parser.add_argument("--refresh-catalog", action="store_true", help="rewrite offeredIn from the live models list")
    parser.add_argument("--catalog-dir", type=Path, default=CATALOG_DIR, help="the catalogue (default: catalog/)")
    return parser


def _subscription(given: str | None) -> str | None:
    return given or next((os.environ[name] for name in SUBSCRIPTION_VARIABLES if os.environ.get(name)), None)


def main(
    argv: Sequence[str] | None = None,
    *,
    credential: TokenCredential | None = None,
    arm_endpoint: str | None = None,
) -> int:
    """`credential` defaults to DefaultAzureCredential; `arm_endpoint` to $AICHAT_ARM_ENDPOINT or Azure's."""
    parser = _parser()
    args = parser.parse_args(argv)
    subscription = _subscription(args.subscription)
    if subscription is None:
        parser.error(f"no subscription: pass --subscription ID or set {' or '.join(SUBSCRIPTION_VARIABLES)}")
    try:
        endpoint = resolve_endpoint(arm_endpoint)
        values = project_keys(stack_config_values(args.stack))
    except (EndpointRefused, FileNotFoundError) as error:
        parser.error(str(error))
    credential = credential or _default_credential()
    arm = Arm(credential, subscription, endpoint)
    if args.refresh_catalog:
        return refresh_catalog(arm, values, args.catalog_dir)
    rows = check_stack(args, values, arm, credential)
    publish(rows, f"Preflight of stack {args.stack} in subscription {subscription}")
    return EXIT_BLOCKED if failed(rows) else EXIT_OK


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def check_stack(
    args: argparse.Namespace, values: Mapping[str, Any], arm: Arm, credential: TokenCredential
) -> list[Row]:
    """The config rows, then (only when the config is valid and sign-in works) the live rows."""
    catalog = load_catalog(args.catalog_dir)
    stack_file = f"Pulumi.{args.stack}.yaml"
    try:
        config = parse_stack_config(values, args.stack, catalog=catalog)
    except ConfigError as error:
        return [Row(STACK_CONFIG, stack_file, Verdict.FAIL, problem, f"fix {stack_file}") for problem in error.problems]
    rows = [Row(STACK_CONFIG, stack_file, Verdict.PASS, "valid, and consistent with the platform catalogue")]
    rows += [Row(STACK_CONFIG, stack_file, Verdict.WARN, warning) for warning in config.warnings]
    sign_in_failure = _sign_in_failure(credential)
    if sign_in_failure:
        return [*rows, sign_in_failure]
    outputs = read_stack_outputs(args.stack, args.stack_outputs)
    return [
        *rows,
        *provider_rows(arm),
        *offer_rows(config, arm, catalog, run_date()),
        *quota_rows(config, arm, outputs),
        *soft_deleted_rows(config, arm, outputs),
        *role_assignment_rows(arm, resource_group_name(config), signed_in_as_deployer=not args.preview_identity),
    ]


def _sign_in_failure(credential: TokenCredential) -> Row | None:
    try:
        credential.get_token(ARM_SCOPE)
    except AzureError as error:
        detail = f"no Azure credential worked: {(str(error).splitlines() or ['no detail'])[0]}"
        remedy = "sign in first: `az login` on a workstation, the azure/login step in a workflow"
        return Row(SIGN_IN, "Azure Resource Manager", Verdict.FAIL, detail, remedy)
    return None


def publish(rows: Sequence[Row], title: str) -> None:
    print(as_text(rows), end="")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a") as summary:
            summary.write(as_markdown(rows, title))


def refresh_catalog(arm: Arm, values: Mapping[str, Any], catalog_dir: Path) -> int:
    try:
        regions = stack_regions(values)
        live = {region: arm.openai_models(region) for region in regions}
    except (ConfigError, ArmReadError) as error:
        print(f"preflight: {error}; the catalogue is unchanged", file=sys.stderr)
        return EXIT_BLOCKED
    changes = refresh_offered_in(catalog_dir, live)
    path = catalog_dir / MODELS_FILE
    print(f"{path}: offeredIn refreshed for {', '.join(regions)} from the live models list")
    print("\n".join(f"  {change}" for change in changes) or "  no changes")
    if changes:
        print(f"Review the diff (git diff {path}), then bump `reviewed:` and `sources.availability.read` to today.")
    return EXIT_OK
