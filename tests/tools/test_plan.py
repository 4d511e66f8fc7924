"""`python -m tools.plan STACK`: the report, the diagram, and the exit status a pull request job relies on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from policy.rules import POLICIES
from tests.policy.breakages import BREAKAGES
from tools import plan
from tools.offline import REPO_ROOT, run_program, stack_config_values


def run_plan(capsys, *argv: str) -> tuple[int, str, str]:
    status = plan.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def mermaid_block(report: str) -> str:
    return report.split("```mermaid\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack_report(request, tmp_path_factory) -> tuple[str, int, str, str]:
    """(stack, exit status, stdout, the --markdown file's text), one plan run per stack."""
    markdown = tmp_path_factory.mktemp(request.param) / "plan.md"
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", request.param, "--markdown", str(markdown)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return request.param, result.returncode, result.stdout, markdown.read_text() if markdown.exists() else ""


def test_plan_passes_for_the_real_stacks_and_writes_the_same_markdown(stack_report):
    _, status, stdout, markdown = stack_report
    assert status == 0, stdout
    assert "PASS: no mandatory violations" in stdout
    assert markdown == stdout


def test_diagram_shows_the_configured_network(stack_report):
    stack, _, stdout, _ = stack_report
    diagram = mermaid_block(stdout)
    network = stack_config_values(stack)["aichat:network"]
    assert network["addressSpace"] in diagram
    for cidr in network["subnets"].values():
        assert cidr in diagram, f"subnet {cidr} missing from the {stack} diagram"


def test_diagram_shows_every_private_endpoint_and_openai_account(stack_report):
    stack, _, stdout, _ = stack_report
    diagram = mermaid_block(stdout)
    openai = stack_config_values(stack)["aichat:openai"]
    for name in ("keyvault_vault_pe", "registry_registry_pe", "postgres_server_pe"):
        assert f"{name}([" in diagram
    for account in openai["instances"]:
        account_node = f"openai_{account['name']}"
        assert f"{account_node}_pe([" in diagram, f"no private endpoint for {account['name']}"
        assert f'{account_node}_pe -.-|"account"| {account_node}' in diagram
        assert account["region"] in diagram


def test_diagram_draws_the_request_path_to_every_openai_account(stack_report):
    stack, _, stdout, _ = stack_report
    diagram = mermaid_block(stdout)
    ingress = stack_config_values(stack)["aichat:ingress"]
    if ingress["mode"] == "applicationGateway":  # prod: through the WAF to the app's private endpoint
        host = ingress["applicationGateway"]["hostName"]
        assert f'browser ==>|"HTTPS {host}"| ingress_gateway' in diagram
        assert 'ingress_gateway ==>|"WAF passed"| chat_site_pe' in diagram
        assert 'chat_site_pe -.-|"sites"| chat_site' in diagram
        assert 'browser ==>|"HTTPS"| chat_site' not in diagram
    else:
        assert 'browser ==>|"HTTPS"| chat_site' in diagram
    assert 'chat_site ==>|"Entra token"| gateway_apim' in diagram
    for account in stack_config_values(stack)["aichat:openai"]["instances"]:
        assert (
            f'gateway_apim ==>|"priority {account["priority"]}, weight {account["weight"]}"| openai_{account["name"]}'
            in diagram
        )


EGRESS_SUBNETS = ("snet_app", "snet_apim", "snet_jobs", "snet_build_agents")


def test_diagram_draws_each_subnets_way_out(stack_report):
    stack, _, stdout, _ = stack_report
    diagram = mermaid_block(stdout)
    if stack_config_values(stack)["aichat:egress"]["mode"] == "firewall":  # prod
        for subnet in EGRESS_SUBNETS:
            assert f'subnet_{subnet} -->|"0.0.0.0/0"| egress_firewall' in diagram
        assert 'subnet_snet_apim -.->|"ApiManagement"| internet' in diagram
        assert 'egress_firewall -->|"allowed host names and service tags"| internet' in diagram
        assert "default outbound access" not in diagram
    else:
        for subnet in EGRESS_SUBNETS:
            assert f'subnet_{subnet} -.->|"default outbound access"| internet' in diagram
        assert "subnet_snet_private_endpoints -.->" not in diagram  # private: no default outbound access


def test_report_lists_components_settings_and_roles(stack_report):
    _, _, stdout, _ = stack_report
    for heading in (
        "## Policy results",
        "## Topology",
        "## Identities and their roles",
        "## Resources by component",
        "### keyvault",
        "### gateway",
        "### openai",
    ):
        assert heading in stdout
    assert "public access: Disabled" in stdout
    assert "| gateway-apim (system-assigned) | Cognitive Services OpenAI User | openai-" in stdout


def test_unknown_stack_is_a_clear_error(capsys):
    status, _, err = run_plan(capsys, "staging")
    assert status == plan.EXIT_CANNOT_EVALUATE
    assert "no stack file Pulumi.staging.yaml" in err and "dev, prod" in err


@pytest.mark.parametrize(
    "breakage",
    [
        b
        for b in BREAKAGES
        if b.id
        in {
            "registry-opened-for-build-agents",
            "web-app-plain-http",
            "private-endpoint-without-dns",
            "key-vault-unprotected-in-prod",
        }
    ],
    ids=lambda b: b.id,
)
def test_plan_fails_naming_rule_and_resource_when_the_baseline_is_broken(breakage, monkeypatch, capsys):
    breakage.patch(monkeypatch)
    monkeypatch.setattr(plan, "run_program", _with_config(breakage.stack_values()))
    status, out, err = run_plan(capsys, breakage.stack)
    assert status == plan.EXIT_VIOLATIONS
    assert "FAIL:" in out
    stderr_lines = [line for line in err.splitlines() if breakage.rule in line and breakage.resource in line]
    assert stderr_lines, err
    assert f"`{breakage.rule}`" in out and breakage.resource in out


def _with_config(values):
    """The plan's program runner, with these config values instead of the stack file's."""
    return lambda stack: run_program(stack, config=values)


def test_advisory_findings_are_reported_without_failing(monkeypatch, capsys):
    values = stack_config_values("dev")
    values["aichat:appService"] = {**values["aichat:appService"], "skuName": "P3v3"}
    monkeypatch.setattr(plan, "run_program", _with_config(values))
    status, out, _ = run_plan(capsys, "dev")
    assert status == plan.EXIT_OK
    assert "| advisory | `allowed-skus-per-environment` | azure-native:web:AppServicePlan chat-plan |" in out


def test_docs_diagram_is_current(capsys):
    # docs/guardrails.md shows the dev diagram; regenerate it as that page says when this fails.
    status, out, _ = run_plan(capsys, "dev")
    documented = (REPO_ROOT / "docs" / "guardrails.md").read_text()
    assert status == plan.EXIT_OK
    assert mermaid_block(documented) == mermaid_block(out), "docs/guardrails.md: the dev diagram is out of date"


def test_docs_list_every_rule():
    documented = (REPO_ROOT / "docs" / "guardrails.md").read_text()
    assert [p.name for p in POLICIES if f"`{p.name}`" not in documented] == []
