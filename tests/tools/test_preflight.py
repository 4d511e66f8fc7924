"""`python -m tools.preflight STACK` against a local stand-in of Azure Resource Manager.

The stand-in (arm_stand_in.py) serves recorded responses (arm_responses/: our own values, shaped like
the REST API spec's example responses for the api-version each SDK call sends); variants/ holds the
recordings a test swaps in to meet one blocker. The tool runs in-process through its entry function,
with a fake credential and the stand-in's address in AICHAT_ARM_ENDPOINT.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from components.catalog import CATALOG_DIR, load_catalog
from components.config import OPENAI_DEPLOYMENT_SKUS, RUN_DATE_VARIABLE
from tests.tools.arm_stand_in import ArmStandIn
from tools.offline import REPO_ROOT
from tools.preflight.arm import ARM_ENDPOINT_VARIABLE
from tools.preflight.catalog_refresh import MODELS_FILE
from tools.preflight.checks import MODULES_NEEDING_NO_REGISTRATION, PROVIDER_OF_MODULE, REQUIRED_PROVIDERS
from tools.preflight.cli import main
from tools.preflight.stack import (
    api_management_prefixes,
    key_vault_prefixes,
    openai_account_prefixes,
    parse_outputs,
)

HERE = Path(__file__).parent
RESPONSES = HERE / "arm_responses"
VARIANTS = RESPONSES / "variants"
STACK_OUTPUTS = HERE / "stack_outputs"
SUBSCRIPTION = "8d3f5a2c-6b1e-4f7a-9c0d-2e4b6a8c1f35"
REGIONS = ("swedencentral", "francecentral", "germanywestcentral")
DEV_ACCOUNT_SWC = "oai-swc-aichat-dev-5e6f7a"  # as in stack_outputs/dev-deployed.json


def arm_path(tail: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}{tail}"


def models_path(region: str) -> str:
    return arm_path(f"/providers/Microsoft.CognitiveServices/locations/{region}/models")


def usages_path(region: str) -> str:
    return arm_path(f"/providers/Microsoft.CognitiveServices/locations/{region}/usages")


PROVIDERS = arm_path("/providers")
DELETED_VAULTS = arm_path("/providers/Microsoft.KeyVault/deletedVaults")
DELETED_ACCOUNTS = arm_path("/providers/Microsoft.CognitiveServices/deletedAccounts")
DELETED_API_MANAGEMENT = arm_path("/providers/Microsoft.ApiManagement/deletedservices")
DEV_GROUP_PERMISSIONS = arm_path("/resourcegroups/rg-aichat-dev/providers/Microsoft.Authorization/permissions")
SUBSCRIPTION_PERMISSIONS = arm_path("/providers/Microsoft.Authorization/permissions")
SWC_DEPLOYMENTS = arm_path(
    f"/resourceGroups/rg-aichat-dev/providers/Microsoft.CognitiveServices/accounts/{DEV_ACCOUNT_SWC}/deployments"
)

HAPPY_PATH = {
    PROVIDERS: RESPONSES / "providers.json",
    **{models_path(region): RESPONSES / f"models-{region}.json" for region in REGIONS},
    **{usages_path(region): RESPONSES / f"usages-{region}.json" for region in REGIONS},
    DELETED_VAULTS: RESPONSES / "deleted-key-vaults.json",
    # The second page, where the first page's next link points.
    f"{DELETED_VAULTS}?$skiptoken=Mjo3N2E1ZDk": RESPONSES / "deleted-key-vaults-page-2.json",
    DELETED_ACCOUNTS: RESPONSES / "deleted-openai-accounts.json",
    DELETED_API_MANAGEMENT: RESPONSES / "deleted-api-management-services.json",
    # dev's resource group exists; prod's does not, so prod's permissions are read on the subscription.
    DEV_GROUP_PERMISSIONS: RESPONSES / "permissions-resource-group.json",
    SUBSCRIPTION_PERMISSIONS: RESPONSES / "permissions-subscription.json",
}

# The api-version of the spec examples each recording is shaped after (research notes, 2026-12-01).
API_VERSIONS = {
    "/providers": "2025-04-01",
    "/models": "2025-09-01",
    "/usages": "2025-09-01",
    "/deployments": "2025-09-01",
    "/deletedAccounts": "2025-09-01",
    "/deletedVaults": "2026-05-15",
    "/deletedservices": "2024-05-01",
    "/permissions": "2022-04-01",
}


class FakeCredential:
    """A TokenCredential that signs nothing: the stand-in does not check tokens."""

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


class NoCredential:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")


@dataclass(frozen=True)
class Outcome:
    status: int
    printed: str
    errors: str
    rows: list[dict[str, str]]  # from the Markdown job summary

    def with_verdict(self, verdict: str) -> list[dict[str, str]]:
        return [row for row in self.rows if row["verdict"] == verdict]

    def row(self, check: str, subject: str) -> dict[str, str]:
        (found,) = [row for row in self.rows if row["check"] == check and row["subject"] == subject]
        return found


def markdown_rows(summary: str) -> list[dict[str, str]]:
    lines = [line for line in summary.splitlines() if line.startswith("| ")]
    headers, *rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return [dict(zip(headers, row, strict=True)) for row in rows]


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    monkeypatch.setenv(RUN_DATE_VARIABLE, "2026-12-01")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    for variable in ("AZURE_SUBSCRIPTION_ID", "ARM_SUBSCRIPTION_ID"):
        monkeypatch.delenv(variable, raising=False)
    with ArmStandIn(HAPPY_PATH) as arm:
        monkeypatch.setenv(ARM_ENDPOINT_VARIABLE, arm.base_url)
        yield arm


@pytest.fixture
def preflight(stand_in, capsys, tmp_path):
    """Run the tool: `preflight("dev", "--stack-outputs", ...)` -> Outcome (a new stack unless told otherwise)."""

    def run(stack: str = "dev", *args: str, credential=None) -> Outcome:
        if "--stack-outputs" not in args:
            args = (*args, "--stack-outputs", str(STACK_OUTPUTS / "never-deployed.json"))
        status = main([stack, "--subscription", SUBSCRIPTION, *args], credential=credential or FakeCredential())
        captured = capsys.readouterr()
        summary = tmp_path / "summary.md"
        rows = markdown_rows(summary.read_text()) if summary.exists() else []
        summary.unlink(missing_ok=True)
        return Outcome(status, captured.out, captured.err, rows)

    return run


def deployed(*args: str) -> tuple[str, ...]:
    return ("--stack-outputs", str(STACK_OUTPUTS / "dev-deployed.json"), *args)


# ------------------------------------------------------------------------------------------------
# Nothing in the way
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_row_passes_against_the_happy_path_recordings(preflight, stack):
    outcome = preflight(stack)
    assert outcome.rows and outcome.with_verdict("PASS") == outcome.rows, outcome.printed
    assert outcome.status == 0


def test_the_printed_table_and_the_job_summary_hold_the_same_rows(preflight):
    outcome = preflight("dev")
    for row in outcome.rows:
        assert row["verdict"] in outcome.printed and row["check"] in outcome.printed
    assert f"{len(outcome.rows)} rows: {len(outcome.rows)} PASS, 0 WARN, 0 FAIL" in outcome.printed


def test_every_page_of_a_list_is_read(preflight, stand_in):
    preflight("dev")
    assert [r.path for r in stand_in.requests].count(DELETED_VAULTS) == 2


def test_each_call_sends_the_api_version_its_recordings_are_shaped_for(preflight, stand_in):
    stand_in.answer(SWC_DEPLOYMENTS, VARIANTS / "deployments-oai-swc.json")
    preflight("dev", *deployed())
    for request in stand_in.requests:
        (version,) = [v for tail, v in API_VERSIONS.items() if request.path.endswith(tail)]
        assert request.api_version == version, request.path


# ------------------------------------------------------------------------------------------------
# Each blocker: a FAIL row with its remedy, and exit status 1
# ------------------------------------------------------------------------------------------------


def test_a_model_the_region_does_not_offer_fails_naming_what_it_does_offer(preflight, stand_in):
    stand_in.answer(models_path("francecentral"), VARIANTS / "models-francecentral-embedding-on-data-zone-only.json")
    outcome = preflight("dev")
    row = outcome.row("model offer", "francecentral: text-embedding-3-small 1 GlobalStandard")
    assert row["verdict"] == "FAIL" and "not offered" in row["detail"] and "DataZoneStandard" in row["detail"]
    assert "aichat:openai.instances[1]" in row["remedy"] and "aichat:openai.models.embedding" in row["remedy"]
    assert outcome.status == 1


def test_quota_short_fails_with_a_quota_request_and_the_capacity_keys(preflight, stand_in):
    stand_in.answer(usages_path("swedencentral"), VARIANTS / "usages-swedencentral-quota-short.json")
    outcome = preflight("dev")
    row = outcome.row("quota", "swedencentral: gpt-5.4-mini 2026-03-17 GlobalStandard")
    assert row["verdict"] == "FAIL" and "needs 30K TPM" in row["detail"] and "20K available" in row["detail"]
    assert "https://aka.ms/oai/quotaincrease" in row["remedy"] and "aichat:openai.models.chat.capacity" in row["remedy"]
    assert outcome.status == 1


def test_capacity_the_stack_already_holds_counts_as_available(preflight, stand_in):
    stand_in.answer(usages_path("swedencentral"), VARIANTS / "usages-swedencentral-quota-short.json")
    stand_in.answer(SWC_DEPLOYMENTS, VARIANTS / "deployments-oai-swc.json")
    outcome = preflight("dev", *deployed())
    row = outcome.row("quota", "swedencentral: gpt-5.4-mini 2026-03-17 GlobalStandard")
    assert row["verdict"] == "PASS" and "30 of it this stack's own deployments" in row["detail"]


@pytest.mark.parametrize(
    ("path", "recording", "name", "remedy"),
    [
        (
            DELETED_VAULTS,
            "deleted-key-vaults-current-name.json",
            "kv-aichat-dev-5e6f7a",
            "az keyvault recover --name kv-aichat-dev-5e6f7a",
        ),
        (
            DELETED_API_MANAGEMENT,
            "deleted-api-management-services-current-name.json",
            "apim-aichat-dev-5e6f7a",
            "az apim deletedservice purge --service-name apim-aichat-dev-5e6f7a --location swedencentral",
        ),
    ],
    ids=["key-vault", "api-management"],
)
def test_a_soft_deleted_resource_holding_a_name_the_stack_uses_fails(
    preflight, stand_in, path, recording, name, remedy
):
    stand_in.answer(path, VARIANTS / recording)
    outcome = preflight("dev", *deployed())
    row = outcome.row("soft-deleted names", name)
    assert row["verdict"] == "FAIL" and row["detail"].startswith(f"pulumi up would recreate {name} but a soft-deleted")
    assert remedy in row["remedy"]
    assert outcome.status == 1


def test_a_name_the_stack_uses_can_always_be_left_behind_by_a_new_incarnation(preflight, stand_in):
    # After a destroy that stopped part-way the incarnation is still in state; replacing it renames everything.
    stand_in.answer(DELETED_VAULTS, VARIANTS / "deleted-key-vaults-current-name.json")
    [row] = preflight("dev", *deployed()).with_verdict("FAIL")
    assert (
        "pulumi up --replace 'urn:pulumi:dev::aichat::random:index/randomString:RandomString::incarnation'"
        in (row["remedy"])
    )


def test_a_purge_protected_vault_is_only_offered_recovery(preflight, stand_in):
    stand_in.answer(DELETED_VAULTS, VARIANTS / "deleted-key-vaults-current-name.json")
    row = preflight("dev", *deployed()).row("soft-deleted names", "kv-aichat-dev-5e6f7a")
    assert "until 2026-12-05" in row["detail"] and "purge" not in row["remedy"]


def test_a_soft_deleted_account_from_an_earlier_incarnation_does_not_fail(preflight, stand_in):
    stand_in.answer(DELETED_ACCOUNTS, VARIANTS / "deleted-openai-accounts-earlier-incarnation.json")
    outcome = preflight("dev", *deployed())
    row = outcome.row("soft-deleted names", "oai-swc-aichat-dev-0a1b2c")
    assert row["verdict"] == "PASS" and "earlier incarnation of this stack does not block" in row["detail"]
    assert (
        "az cognitiveservices account purge --name oai-swc-aichat-dev-0a1b2c --resource-group rg-aichat-dev"
        in (row["detail"])
    )
    assert outcome.status == 0


def test_missing_permission_to_create_role_assignments_fails_naming_the_roles_that_grant_it(preflight, stand_in):
    stand_in.answer(DEV_GROUP_PERMISSIONS, VARIANTS / "permissions-contributor-only.json")
    outcome = preflight("dev")
    row = outcome.row("role assignments", "resource group rg-aichat-dev")
    assert row["verdict"] == "FAIL" and "Microsoft.Authorization/roleAssignments/write" in row["detail"]
    assert "User Access Administrator" in row["remedy"] and "/resourceGroups/rg-aichat-dev" in row["remedy"]
    assert outcome.status == 1


def test_a_preview_identity_lacking_the_permission_gets_a_warning_not_a_failure(preflight, stand_in):
    stand_in.answer(DEV_GROUP_PERMISSIONS, VARIANTS / "permissions-contributor-only.json")
    outcome = preflight("dev", "--preview-identity")
    assert outcome.row("role assignments", "resource group rg-aichat-dev")["verdict"] == "WARN"
    assert outcome.status == 0


def test_before_the_resource_group_exists_the_permission_is_read_on_the_subscription(preflight, stand_in):
    stand_in.fail(DEV_GROUP_PERMISSIONS, 404, "ResourceGroupNotFound")
    outcome = preflight("dev")
    assert outcome.row("role assignments", f"subscription {SUBSCRIPTION}")["verdict"] == "PASS"


def test_an_unregistered_provider_fails_with_the_command_that_registers_it(preflight, stand_in):
    stand_in.answer(PROVIDERS, VARIANTS / "providers-key-vault-not-registered.json")
    outcome = preflight("dev")
    row = outcome.row("resource providers", "Microsoft.KeyVault")
    assert row["verdict"] == "FAIL" and row["remedy"] == "az provider register --namespace Microsoft.KeyVault"
    assert outcome.status == 1


def test_a_forbidden_call_becomes_a_fail_row_not_a_traceback(preflight, stand_in):
    stand_in.forbid(usages_path("francecentral"))
    outcome = preflight("dev")
    (failed,) = outcome.with_verdict("FAIL")
    assert (failed["check"], failed["subject"]) == ("quota", "francecentral")
    assert "could not read the Cognitive Services quota usages in francecentral" in failed["detail"]
    assert "403" in failed["detail"] and "Reader" in failed["remedy"]
    assert "Traceback" not in outcome.printed + outcome.errors
    assert outcome.status == 1


def test_an_unregistered_subscription_is_reported_and_never_registered(preflight, stand_in):
    # The SDK's default pipeline would answer this 409 by POSTing a provider registration.
    stand_in.fail(models_path("swedencentral"), 409, "MissingSubscriptionRegistration")
    outcome = preflight("dev")
    assert outcome.row("model offer", "swedencentral")["verdict"] == "FAIL"
    assert {request.method for request in stand_in.requests} == {"GET"}


# ------------------------------------------------------------------------------------------------
# Before going live
# ------------------------------------------------------------------------------------------------


def test_an_invalid_stack_config_fails_each_problem_without_calling_azure(preflight, stand_in, monkeypatch):
    monkeypatch.setenv(RUN_DATE_VARIABLE, "2028-03-01")  # both dev models have retired by then
    outcome = preflight("dev")
    assert len(outcome.rows) == 2 and {row["check"] for row in outcome.rows} == {"stack config"}
    assert outcome.with_verdict("FAIL") == outcome.rows and "Pulumi.dev.yaml" in outcome.rows[0]["remedy"]
    assert stand_in.requests == [] and outcome.status == 1


def test_a_failed_sign_in_is_one_fail_row_and_no_call(preflight, stand_in):
    outcome = preflight("dev", credential=NoCredential())
    assert outcome.row("sign-in", "Azure Resource Manager")["verdict"] == "FAIL"
    assert stand_in.requests == [] and outcome.status == 1


def test_plain_http_to_a_host_other_than_loopback_is_refused(preflight, stand_in, monkeypatch, capsys):
    monkeypatch.setenv(ARM_ENDPOINT_VARIABLE, "http://management.example.com")
    with pytest.raises(SystemExit) as exit_:
        preflight("dev")
    assert exit_.value.code == 2 and "only https" in capsys.readouterr().err
    assert stand_in.requests == []


def test_no_subscription_is_a_usage_error(stand_in, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dev"], credential=FakeCredential())
    assert exit_.value.code == 2 and "AZURE_SUBSCRIPTION_ID" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# --refresh-catalog, on a copy of the catalogue
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def catalog_copy(tmp_path) -> Path:
    return Path(shutil.copytree(CATALOG_DIR, tmp_path / "catalog"))


def offered_by_recording(region: str) -> set[tuple[str, str, str]]:
    """(model, version, SKU) the region's recorded models list offers to OpenAI accounts."""
    entries = json.loads((RESPONSES / f"models-{region}.json").read_text())["value"]
    return {
        (entry["model"]["name"], entry["model"]["version"], sku["name"])
        for entry in entries
        if entry["kind"] == "OpenAI"
        for sku in entry["model"]["skus"]
    }


def test_refresh_catalog_adds_and_removes_exactly_the_regions_the_models_list_says(preflight, catalog_copy):
    before = load_catalog(CATALOG_DIR).models
    assert preflight("dev", "--refresh-catalog", "--catalog-dir", str(catalog_copy)).status == 0
    after = load_catalog(catalog_copy).models
    refreshed = {
        "swedencentral": offered_by_recording("swedencentral"),
        "francecentral": offered_by_recording("francecentral"),
    }
    for name, model in after.items():
        for version, entry in model.versions.items():
            for sku in OPENAI_DEPLOYMENT_SKUS:
                now = set(entry.offered_in.get(sku, []))
                was = set(before[name].versions[version].offered_in.get(sku, []))
                assert now - set(refreshed) == was - set(refreshed), f"{name} {version} {sku}: another region changed"
                for region, offered in refreshed.items():
                    assert (region in now) == ((name, version, sku) in offered), f"{name} {version} {sku} {region}"


def test_refresh_catalog_adds_a_region_the_catalogue_lacked(preflight, catalog_copy):
    assert "swedencentral" not in load_catalog(CATALOG_DIR).regions_offering(
        "gpt-5.4-nano", "2026-03-17", "DataZoneStandard"
    )
    preflight("dev", "--refresh-catalog", "--catalog-dir", str(catalog_copy))
    assert "swedencentral" in load_catalog(catalog_copy).regions_offering(
        "gpt-5.4-nano", "2026-03-17", "DataZoneStandard"
    )


def test_refresh_catalog_changes_only_offered_in_lines_and_keeps_every_comment(preflight, catalog_copy):
    original = (CATALOG_DIR / MODELS_FILE).read_text().splitlines()
    preflight("dev", "--refresh-catalog", "--catalog-dir", str(catalog_copy))
    refreshed = (catalog_copy / MODELS_FILE).read_text().splitlines()
    offered_in_line = re.compile(rf"\s+(offeredIn|{'|'.join(OPENAI_DEPLOYMENT_SKUS)}):")
    assert refreshed != original
    assert [line for line in refreshed if not offered_in_line.match(line)] == [
        line for line in original if not offered_in_line.match(line)
    ]


def test_refresh_catalog_reminds_to_review_the_diff(preflight, catalog_copy):
    printed = preflight("dev", "--refresh-catalog", "--catalog-dir", str(catalog_copy)).printed
    assert "+DataZoneStandard" in printed and "Review the diff" in printed and "reviewed:" in printed


# ------------------------------------------------------------------------------------------------
# Kept in step with the program
# ------------------------------------------------------------------------------------------------


def test_the_provider_check_covers_every_azure_module_the_components_import():
    imported = {
        module
        for path in (REPO_ROOT / "components").glob("*.py")
        for module in re.findall(r"pulumi_azure_native\.(\w+)", path.read_text())
    }
    assert imported <= set(PROVIDER_OF_MODULE) | set(MODULES_NEEDING_NO_REGISTRATION)
    assert {"Microsoft.CognitiveServices", "Microsoft.ManagedIdentity", "Microsoft.Insights"} <= set(REQUIRED_PROVIDERS)


def test_the_names_read_from_stack_outputs_are_the_program_s_names_and_carry_the_stack_s_prefixes(dev):
    config = dev.stack_config
    given = {
        "azure-native:keyvault:Vault": ("vaultName", key_vault_prefixes(config)),
        "azure-native:cognitiveservices:Account": ("accountName", openai_account_prefixes(config)),
        "azure-native:apimanagement:ApiManagementService": ("serviceName", api_management_prefixes(config)),
    }
    names = set()
    for type_token, (name_input, prefixes) in given.items():
        for resource in dev.of_type(type_token):
            names.add(resource.inputs[name_input])
            assert resource.inputs[name_input].startswith(prefixes)
    assert parse_outputs(dev.outputs, "the mocked program").names_in_use == names
