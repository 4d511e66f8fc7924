"""The README's config reference covers every key, generated from the config models; its diagram is current."""

from __future__ import annotations

import re

from components.config import project_keys
from tools.config_reference import readme_with_reference
from tools.offline import REPO_ROOT, known_stacks, stack_config_values

README = (REPO_ROOT / "README.md").read_text()


def leaf_paths(value, prefix: str = "") -> set[str]:
    """`{"network": {"subnets": {"jobs": ...}}}` -> {"network.subnets.jobs"}; list items as `[]`."""
    if isinstance(value, dict):
        return set().union(*(leaf_paths(v, f"{prefix}.{k}" if prefix else k) for k, v in value.items())) or {prefix}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return set().union(*(leaf_paths(v, f"{prefix}[]") for v in value))
    return {prefix}


def documented_paths() -> set[str]:
    """First cells of the config reference; `/ .model` continues the first key's parent path."""
    reference = README.split("## Config reference", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for cell in re.findall(r"^\| ([^|]+) \|", reference, flags=re.MULTILINE):
        keys = re.findall(r"`([^`]+)`", cell)
        if not keys:
            continue
        parent = keys[0].rsplit(".", 1)[0]
        documented.update(parent + key if key.startswith(".") else key for key in keys)
    return documented


def is_documented(path: str, documented: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1))


def test_every_key_in_every_stack_file_is_in_the_config_reference():
    documented = documented_paths()
    for stack in known_stacks():
        values = project_keys(stack_config_values(stack))
        missing = sorted(p for p in leaf_paths(values) if not is_documented(p, documented))
        assert missing == [], f"Pulumi.{stack}.yaml sets keys the README's config reference does not describe"


def test_the_reference_names_no_key_twice():
    reference = README.split("## Config reference", 1)[1].split("\n## ", 1)[0]
    first_keys = re.findall(r"^\| `([^`]+)`", reference, flags=re.MULTILINE)
    assert len(first_keys) == len(set(first_keys))


def test_the_config_reference_table_is_generated_from_the_current_models_and_stack_files():
    assert readme_with_reference(README) == README, (
        "README.md: the config reference is out of date; run `python -m tools.config_reference`"
    )


def test_readme_shows_the_current_dev_diagram(program_runs):
    from tools.diagram import topology
    from tools.inventory import Inventory

    diagram = "```mermaid\n" + topology(Inventory(program_runs["dev"])).rstrip("\n") + "\n```"
    assert diagram in README, "README.md: the dev diagram is out of date; regenerate it as the README says"
