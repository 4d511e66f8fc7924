"""The real program, evaluated for dev and prod under mocks, meets the baseline; breaking it is caught.

`program_runs` (tests/conftest.py) evaluates each stack once. The breakage tests re-run the program
with one real change each (see breakages.py) and require a mandatory finding naming rule and resource.
"""

from __future__ import annotations

import pytest

from policy.rules.services import STATEFUL_TYPES
from tests.policy.breakages import BREAKAGES, Breakage
from tools.offline import run_program
from tools.policy_run import evaluate

# What the network-edge rules look at, which only prod's ingress and egress modes declare.
NETWORK_EDGE_TYPES = (
    "network:ApplicationGateway",
    "network:WebApplicationFirewallPolicy",
    "network:AzureFirewall",
    "network:RouteTable",
    "network:Route",
)


def test_program_has_no_mandatory_violations(program):
    mandatory = [str(v) for v in evaluate(program.resources) if v.mandatory]
    assert mandatory == [], f"{program.stack}:\n" + "\n".join(mandatory)


@pytest.mark.parametrize(
    "resource_type",
    [
        "network:PrivateEndpoint",
        "network:PrivateDnsZoneGroup",
        "authorization:RoleAssignment",
        "monitor:DiagnosticSetting",
        "keyvault:Vault",
        "containerregistry:Registry",
        "dbforpostgresql:Server",
        "dbforpostgresql:Configuration",
        "web:WebApp",
        "web:WebAppFtpAllowed",
        "web:WebAppScmAllowed",
        *NETWORK_EDGE_TYPES,
    ],
)
def test_rules_had_real_resources_to_check(program, resource_type):
    # Zero findings mean something only if the resources the rules look at are there. dev uses ingress public and
    # egress default, so the network edge's gateway and firewall are prod's to show.
    if resource_type in NETWORK_EDGE_TYPES and program.stack != "prod":
        return
    assert program.of_type(f"azure-native:{resource_type}"), f"{program.stack}: no {resource_type} registered"


@pytest.mark.parametrize("resource_type", STATEFUL_TYPES)
def test_prod_stateful_resources_are_protected(prod, resource_type):
    # The prod-only rule is exercised by the real prod stack, not just by synthetic resources.
    stateful = prod.of_type(f"azure-native:{resource_type}")
    assert stateful and all(r.protect for r in stateful), [(r.name, r.protect) for r in stateful]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.id)
def test_breaking_the_baseline_in_the_program_is_caught(breakage: Breakage, monkeypatch):
    breakage.patch(monkeypatch)
    run = run_program(breakage.stack, config=breakage.stack_values())
    findings = [v for v in evaluate(run.resources) if v.mandatory and v.rule == breakage.rule]
    assert breakage.resource in [v.resource_name for v in findings], [str(v) for v in evaluate(run.resources)]
    text = str(next(v for v in findings if v.resource_name == breakage.resource))
    assert breakage.rule in text and breakage.resource in text
