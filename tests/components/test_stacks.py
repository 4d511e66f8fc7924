"""dev and prod declare the same system; only config-driven counts and settings differ. Runs are repeatable."""

from __future__ import annotations

from collections import Counter

from tools.offline import run_program

# The documented differences between stacks (README "Config reference"): the number of Azure OpenAI
# instances, and so every resource made once per instance. Everything else exists in both stacks.


def instance_names(program) -> list[str]:
    return [instance["name"] for instance in program.config.get("aichat:openai", {}).get("instances", [])]


def split_per_instance(program) -> tuple[set[tuple[str, str]], Counter]:
    """(resources not tied to an OpenAI instance, shape of the per-instance resources)."""
    names = instance_names(program)
    shared, per_instance = set(), Counter()
    for resource in program.resources:
        owner = next((n for n in names if f"-{n}" in resource.name), None)
        if owner is None:
            shared.add((resource.type, resource.name))
        else:
            per_instance[(resource.type, resource.name.replace(owner, "<instance>"))] += 1
    return shared, per_instance


def test_dev_and_prod_register_the_same_resources_apart_from_per_instance_ones(dev, prod):
    dev_shared, dev_shape = split_per_instance(dev)
    prod_shared, prod_shape = split_per_instance(prod)
    assert dev_shared == prod_shared
    dev_count, prod_count = len(instance_names(dev)) or 1, len(instance_names(prod)) or 1
    assert {k: v // dev_count for k, v in dev_shape.items()} == {k: v // prod_count for k, v in prod_shape.items()}


def test_running_the_program_twice_gives_identical_names_and_role_assignments():
    first, second = run_program("dev"), run_program("dev")

    def identity(run):
        return sorted(
            (r.type, r.name, str(r.outputs.get("name")), str(r.inputs.get("roleAssignmentName"))) for r in run.resources
        )

    assert identity(first) == identity(second)
    assert first.outputs == second.outputs


def test_globally_unique_names_differ_between_stacks(dev, prod):
    for output in ("appUrl", "registryLoginServer", "postgresHost", "keyVaultUri"):
        assert dev.outputs[output] != prod.outputs[output]
