"""The GitHub Actions workflows: valid, least privilege, OIDC only, previews per stack, gated prod.

Structure is read with PyYAML; validity against GitHub's workflow schema is checked by
check-jsonschema (schema shipped in the package, no network) and security by zizmor (offline audits).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.offline import REPO_ROOT, known_stacks

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PINNED_USE = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def all_workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def jobs_of(name: str) -> dict[str, dict[str, Any]]:
    return load(name)["jobs"]


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job.get("steps", []) if step.get("uses", "").split("@")[0] == action]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def venv_tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed; it is pinned in requirements-dev.txt (run `make setup`)"
    return found


# ------------------------------------------------------------------------------------------------
# Valid and safe: schema, linter, pinning, permissions, no secret values
# ------------------------------------------------------------------------------------------------


def test_the_workflows_exist_and_parse():
    names = {path.name for path in all_workflow_files()}
    assert {"pr.yml", "deploy.yml", "deploy-stack.yml"} <= names
    for path in all_workflow_files():
        workflow = load(path.name)
        assert workflow["on"] and workflow["jobs"], f"{path.name} has no trigger or no jobs"


def test_the_workflows_match_githubs_workflow_schema():
    result = subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, all_workflow_files())],
        capture_output=True,
        text=True,
        check=False,  # the exit code is asserted with the tool's message
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_no_security_problem_of_medium_or_higher_severity():
    result = subprocess.run(
        [venv_tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,  # the exit code is asserted with the tool's message
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['ident']}: {f['desc']}" for f in findings)


@pytest.mark.parametrize("path", all_workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version_named(path):
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)", line)
        if not match or match.group(1).startswith("./"):
            continue
        assert PINNED_USE.match(match.group(1)), f"{path.name}: {match.group(1)} is not pinned to a commit"
        assert re.search(r"#\s*v\d+\.\d+\.\d+", match.group(2)), f"{path.name}: {match.group(1)} lacks a # vX.Y.Z note"


@pytest.mark.parametrize("path", all_workflow_files(), ids=lambda p: p.name)
def test_nothing_is_granted_by_default_and_no_job_writes_contents(path):
    workflow = load(path.name)
    assert workflow["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{path.name}: job {name} must list its permissions"
        assert permissions.get("contents") in (None, "read"), f"{path.name}: job {name} may not write contents"
        assert "write-all" not in json.dumps(permissions)


@pytest.mark.parametrize("path", all_workflow_files(), ids=lambda p: p.name)
def test_no_secret_values_only_references(path):
    text = path.read_text()
    assert "client-secret" not in text and "creds:" not in text, "Azure login must use OIDC, never a client secret"
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text), "a literal GUID"
    assert not re.search(r"(?i)(password|passphrase|token|secret|key)\s*[:=]\s*['\"]?[A-Za-z0-9+/=_-]{16,}", text)
    for line in text.splitlines():
        if "secrets." in line:
            assert re.search(r"\$\{\{\s*secrets\.[A-Z_]+\s*\}\}", line), f"{path.name}: {line.strip()}"


# ------------------------------------------------------------------------------------------------
# Pull requests
# ------------------------------------------------------------------------------------------------


def test_pull_requests_run_the_offline_checks_for_everyone():
    workflow = load("pr.yml")
    assert "pull_request" in workflow["on"] and "pull_request_target" not in workflow["on"]
    checks = workflow["jobs"]["checks"]
    assert "if" not in checks, "offline checks must also run for forks"
    commands = run_text(checks)
    assert "make lint" in commands and ".ci/run" in commands
    for_each_stack = re.search(r"for stack in ([\w ]+); do", commands)
    assert for_each_stack and set(for_each_stack.group(1).split()) == set(known_stacks())
    assert 'python -m tools.plan "$stack" --markdown' in commands and "$GITHUB_STEP_SUMMARY" in commands


def test_the_preview_runs_for_every_stack_with_oidc_a_pr_comment_and_the_policy_pack():
    preview = jobs_of("pr.yml")["preview"]
    assert set(preview["strategy"]["matrix"]["stack"]) == set(known_stacks())
    assert preview["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    (login,) = steps_using(preview, "azure/login")
    assert login["with"] == {
        "client-id": "${{ vars.AZURE_PREVIEW_CLIENT_ID }}",
        "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
        "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
    }
    (run,) = [s for s in steps_using(preview, "pulumi/actions") if s.get("with", {}).get("command")]
    assert run["with"]["command"] == "preview"
    assert run["with"]["stack-name"] == "${{ matrix.stack }}"
    assert run["with"]["policyPacks"] == "policy"
    assert run["with"]["comment-on-pr"] is True
    assert preview["env"]["ARM_USE_OIDC"] == "true", "the provider must renew its token by OIDC, not a secret"


def test_forks_get_no_preview_and_a_clear_message_instead():
    jobs = jobs_of("pr.yml")
    same_repository = "github.event.pull_request.head.repo.full_name == github.repository"
    assert jobs["preview"]["if"] == same_repository
    skipped = jobs["preview-skipped"]
    assert skipped["if"] == same_repository.replace("==", "!=")
    assert skipped["permissions"] == {}
    message = run_text(skipped)
    assert "::notice" in message and "fork" in message and "$GITHUB_STEP_SUMMARY" in message


def test_previews_keep_the_deployed_image_so_they_show_only_the_pull_requests_changes(dev):
    commands = run_text(jobs_of("pr.yml")["preview"])
    assert "pulumi stack output appImage" in commands
    assert "pulumi config set --path" in commands and "aichat:appService.image" in commands
    assert dev.outputs["appImage"] == dev.config["aichat:appService"]["image"]


# ------------------------------------------------------------------------------------------------
# Deployments
# ------------------------------------------------------------------------------------------------


def test_pushes_to_main_deploy_dev_then_prod_through_the_stack_workflow():
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert [job["with"]["stack"] for job in jobs.values()] == ["dev", "prod"]
    assert all(job["uses"] == "./.github/workflows/deploy-stack.yml" for job in jobs.values())
    assert jobs["prod"]["needs"] == "dev"


def test_each_deployment_runs_in_the_environment_named_after_its_stack_so_prod_needs_approval():
    deploy = jobs_of("deploy-stack.yml")["deploy"]
    assert deploy["environment"] == "${{ inputs.stack }}"
    called_with = {job["with"]["stack"] for job in jobs_of("deploy.yml").values()}
    assert "prod" in called_with  # -> environment `prod`, protected by required reviewers (docs/deploying.md)


def test_two_deployments_of_one_stack_never_overlap():
    concurrency = jobs_of("deploy-stack.yml")["deploy"]["concurrency"]
    assert concurrency == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}


def test_the_image_gets_an_immutable_tag_and_is_built_inside_the_vnet():
    deploy = jobs_of("deploy-stack.yml")["deploy"]
    assert deploy["env"]["IMAGE"] == "chat:${{ github.sha }}"
    commands = run_text(deploy)
    assert re.search(r'az acr build --registry "\$registry" --agent-pool "\$pool" --image "\$IMAGE"', commands)
    assert "--file apps/chat/Dockerfile" in commands
    assert 'pulumi config set --path --stack "$STACK" aichat:appService.image "$IMAGE"' in commands
    (up,) = [s for s in steps_using(deploy, "pulumi/actions") if s.get("with", {}).get("command")]
    assert (up["with"]["command"], up["with"]["policyPacks"]) == ("up", "policy")


def test_the_dockerfile_the_pipeline_builds_exists():
    assert (REPO_ROOT / "apps" / "chat" / "Dockerfile").is_file()


def test_the_first_deployment_excludes_exactly_the_ingestion_job(program):
    commands = run_text(jobs_of("deploy-stack.yml")["deploy"])
    (urn,) = re.findall(r'--exclude "([^"]+)"', commands)
    urn = urn.replace("${STACK}", program.stack).replace("\\$", "$")
    assert urn == program.one("azure-native:containerinstance:ContainerGroup", "ingestion-group").urn


def test_every_stack_output_the_pipelines_read_exists(program):
    text = "\n".join(path.read_text() for path in all_workflow_files())
    read = set(re.findall(r"pulumi stack output (\w+)", text))
    assert read, "the pipelines read no stack outputs?"
    assert read <= set(program.outputs), f"{program.stack}: missing outputs {sorted(read - set(program.outputs))}"


# ------------------------------------------------------------------------------------------------
# The live preflight, fresh Azure logins, and the ingestion job's result
# ------------------------------------------------------------------------------------------------

PREFLIGHT = '.venv/bin/python -m tools.preflight "$STACK"'


def index_of(steps: list[dict[str, Any]], matches, what: str) -> int:
    found = [index for index, step in enumerate(steps) if matches(step)]
    assert found, f"no step {what}"
    return found[0]


def is_azure_login(step: dict[str, Any]) -> bool:
    return step.get("uses", "").split("@")[0] == "azure/login"


def runs(text: str):
    return lambda step: text in step.get("run", "")


def pulumi_action(command: str):
    return lambda step: (
        step.get("uses", "").split("@")[0] == "pulumi/actions" and step.get("with", {}).get("command") == command
    )


def deploy_steps() -> list[dict[str, Any]]:
    return jobs_of("deploy-stack.yml")["deploy"]["steps"]


def test_previews_run_the_preflight_after_the_azure_login_and_before_pulumi_preview():
    steps = jobs_of("pr.yml")["preview"]["steps"]
    login = index_of(steps, is_azure_login, "logging in to Azure")
    preflight = index_of(steps, runs(PREFLIGHT), "running the preflight")
    preview = index_of(steps, pulumi_action("preview"), "running pulumi preview")
    assert login < preflight < preview


def test_the_preview_preflight_knows_its_reader_identity_may_not_create_role_assignments():
    steps = jobs_of("pr.yml")["preview"]["steps"]
    assert "--preview-identity" in steps[index_of(steps, runs(PREFLIGHT), "running the preflight")]["run"]


def test_deployments_run_the_preflight_after_the_azure_login_and_before_the_first_pulumi_up():
    steps = deploy_steps()
    login = index_of(steps, is_azure_login, "logging in to Azure")
    preflight = index_of(steps, runs(PREFLIGHT), "running the preflight")
    first_up = index_of(steps, lambda s: "pulumi up" in s.get("run", "") or pulumi_action("up")(s), "running up")
    assert login < preflight < first_up
    assert "--preview-identity" not in steps[preflight]["run"], "the deployer's own permissions must be checked"


def test_the_azure_cli_logs_in_again_right_before_the_image_build():
    # The CLI cannot renew an OIDC login (about an hour; Azure/login#180, #372); a first `pulumi up` can outlast it.
    steps = deploy_steps()
    build = index_of(steps, runs("az acr build"), "building the image")
    first_login = steps[index_of(steps, is_azure_login, "logging in to Azure")]
    assert is_azure_login(steps[build - 1]) and steps[build - 1]["with"] == first_login["with"]


def test_after_pulumi_up_the_cli_logs_in_again_and_waits_for_the_ingestion_job():
    steps = deploy_steps()
    up = index_of(steps, pulumi_action("up"), "running pulumi up")
    wait = index_of(steps, runs("az container show"), "waiting for the ingestion job")
    assert up < wait and is_azure_login(steps[wait - 1])
    script = steps[wait]["run"]
    assert "currentState" in script and "Terminated" in script and "az container logs" in script


STUB_PULUMI = """#!/usr/bin/env bash
# `pulumi stack output NAME --stack STACK`, as a deployed dev stack answers it
case "$3" in
  ingestionJobName) if [ -n "$STUB_INGESTION" ]; then echo ci-aichat-dev-ingest-1a2b3c; else exit 1; fi ;;
  resourceGroupName) echo rg-aichat-dev ;;
  *) exit 1 ;;
esac
"""
STUB_AZ = """#!/usr/bin/env bash
# `az container show ... --output tsv` (state, exit code, finish time) answers the next line of $STUB_POLLS
# (the last line again once they are used up); `az container logs` prints a log line.
case "$1 $2" in
  "container show")
    count=$(cat "$STUB_POLLS.count" 2>/dev/null || echo 0)
    total=$(wc -l < "$STUB_POLLS")
    line=$(( count < total ? count + 1 : total ))
    echo $((count + 1)) > "$STUB_POLLS.count"
    sed -n "${line}p" "$STUB_POLLS" ;;
  "container logs") echo "ingested 12 documents" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def ingestion_wait(tmp_path):
    """Runs the workflow's wait step in bash, with stand-in `pulumi` and `az` commands first on PATH."""
    steps = deploy_steps()
    script = steps[index_of(steps, runs("az container show"), "waiting for the ingestion job")]["run"]
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("pulumi", STUB_PULUMI), ("az", STUB_AZ)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)

    def run(*, state="Terminated", exit_code="0", ingestion=True, timeout_minutes="30", polls=None):
        answers = tmp_path / "polls.tsv"
        answers.write_text("".join("\t".join(poll) + "\n" for poll in polls or [(state, exit_code, "T1")]))
        (tmp_path / "polls.tsv.count").unlink(missing_ok=True)
        env = {
            "PATH": f"{stubs}:/usr/bin:/bin",
            "STACK": "dev",
            "INGESTION_TIMEOUT_MINUTES": timeout_minutes,
            "INGESTION_POLL_SECONDS": "0",
            "STUB_POLLS": str(answers),
            "STUB_INGESTION": "yes" if ingestion else "",
        }
        # GitHub runs a `run:` script with `bash -e`.
        return subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=60)

    return run


def test_the_ingestion_wait_fails_the_deployment_when_the_job_exits_non_zero(ingestion_wait):
    result = ingestion_wait(exit_code="3")
    assert result.returncode == 1 and "exited with code 3" in result.stdout
    assert "ingested 12 documents" in result.stdout, "the job's logs are printed"


def test_the_ingestion_wait_passes_when_the_job_exits_zero(ingestion_wait):
    result = ingestion_wait(exit_code="0")
    assert result.returncode == 0 and "ingested 12 documents" in result.stdout


def test_the_ingestion_wait_ignores_the_run_that_the_diagnostic_setting_restart_killed(ingestion_wait):
    killed, rerun, done = ("Terminated", "137", "T1"), ("Running", "", ""), ("Terminated", "0", "T2")
    result = ingestion_wait(polls=[killed, rerun, done])
    assert result.returncode == 0 and "finished (exit code 0)" in result.stdout


def test_the_ingestion_wait_gives_up_at_its_time_limit(ingestion_wait):
    result = ingestion_wait(state="Running", exit_code="", timeout_minutes="0")
    assert result.returncode == 1 and "did not finish" in result.stdout


def test_the_ingestion_wait_skips_a_stack_without_ingestion(ingestion_wait):
    result = ingestion_wait(ingestion=False)
    assert result.returncode == 0 and "disabled" in result.stdout
