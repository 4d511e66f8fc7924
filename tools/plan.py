"""The offline plan: what a stack will contain and whether it meets the baseline, with no cloud access.

    python -m tools.plan STACK [--markdown FILE]

Evaluates the Pulumi program for STACK under mocks (tools/offline.py), runs the policy pack over the
registered resources (tools/policy_run.py), and prints one Markdown report: the policy results, a Mermaid
topology diagram, identities and their roles, and every resource grouped by component with the settings
a reviewer checks. `--markdown FILE` also writes the report to FILE (the pull request job summary).

Exit status: 0 when no mandatory rule is violated, 1 when one is (each finding names rule and resource),
2 when the program cannot be evaluated (bad config, unknown stack).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from policy.rules import POLICIES, is_mandatory
from tools.diagram import topology
from tools.inventory import Inventory
from tools.markdown import table
from tools.offline import ProgramError, ProgramRun, known_stacks, run_program
from tools.policy_run import Violation, evaluate

EXIT_OK, EXIT_VIOLATIONS, EXIT_CANNOT_EVALUATE = 0, 1, 2


def policy_section(violations: Sequence[Violation]) -> list[str]:
    mandatory_rules = sum(1 for p in POLICIES if is_mandatory(p))
    header = f"## Policy results ({len(POLICIES)} rules: {mandatory_rules} mandatory, {len(POLICIES) - mandatory_rules} advisory)"
    if not violations:
        return [header, "", "All rules pass."]
    ordered = sorted(violations, key=lambda v: (not v.mandatory, v.rule, v.resource_name))
    rows = [(v.level.value, f"`{v.rule}`", v.resource, v.message) for v in ordered]
    return [header, "", *table(("level", "rule", "resource", "finding"), rows)]


def topology_section(inventory: Inventory) -> list[str]:
    return ["## Topology", "", "```mermaid", topology(inventory).rstrip("\n"), "```"]


def roles_section(inventory: Inventory) -> list[str]:
    rows = inventory.readable_role_grants()
    return ["## Identities and their roles", "", *table(("identity", "role", "on"), rows)]


def resources_section(inventory: Inventory) -> list[str]:
    lines = ["## Resources by component"]
    for component, members in inventory.grouped_by_component().items():
        rows = [
            (
                r.name,
                r.type.removeprefix("azure-native:"),
                ", ".join(f"{k}: {v}" for k, v in inventory.settings(r).items()),
            )
            for r in members
        ]
        lines += ["", f"### {component} ({len(members)})", "", *table(("resource", "type", "settings"), rows)]
    return lines


def report(run: ProgramRun, violations: Sequence[Violation]) -> str:
    inventory = Inventory(run)
    mandatory = [v for v in violations if v.mandatory]
    verdict = f"FAIL: {len(mandatory)} mandatory violation(s)" if mandatory else "PASS: no mandatory violations"
    custom = sum(1 for r in run.resources if r.custom)
    advisory = len(violations) - len(mandatory)
    lines = [
        f"# Plan for stack `{run.stack}`",
        "",
        f"Evaluated offline under mocks: {custom} resources. Policy: **{verdict}**, {advisory} advisory finding(s).",
        "",
        *policy_section(violations),
        "",
        *topology_section(inventory),
        "",
        *roles_section(inventory),
        "",
        *resources_section(inventory),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help=f"stack name (a Pulumi.<stack>.yaml here: {', '.join(known_stacks())})")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report to FILE")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = run_program(args.stack)
    except (ProgramError, FileNotFoundError) as error:
        print(f"plan: cannot evaluate stack {args.stack!r}: {error}", file=sys.stderr)
        return EXIT_CANNOT_EVALUATE
    violations = evaluate(run.resources)
    text = report(run, violations)
    print(text, end="")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    mandatory = [v for v in violations if v.mandatory]
    for violation in mandatory:
        print(f"plan: {violation}", file=sys.stderr)
    return EXIT_VIOLATIONS if mandatory else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
