"""The stack file's JSON Schema (schema/stack-config.json) is generated from the config models and is current."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tools.config_reference import SCHEMA_FILE, stack_file_schema
from tools.offline import REPO_ROOT, known_stacks


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def stack_file(stack: str) -> dict:
    return yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())


def test_the_committed_schema_is_generated_from_the_current_models():
    assert json.loads(SCHEMA_FILE.read_text()) == stack_file_schema(), (
        f"{SCHEMA_FILE.name} is out of date; run `python -m tools.config_reference`"
    )


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("stack", known_stacks())
def test_every_stack_file_validates_against_the_schema(stack):
    assert schema_errors(stack_file(stack)) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda config: config.update({"aichat:netwrok": {}}), "'aichat:netwrok' is not one of"),
        (lambda config: config["aichat:postgres"].update(storageSizeGB=64), "'storageSizeGB' was unexpected"),
        (lambda config: config["aichat:postgres"].update(tier="Basic"), "'Basic' is not one of"),
        (lambda config: config["aichat:gateway"].update(capacity=13), "13 is greater than the maximum of 12"),
        (lambda config: config["aichat:appService"].pop("image"), "'image' is a required property"),
    ],
)
def test_the_schema_refuses_what_the_models_refuse(change, expected):
    document = stack_file("dev")
    change(document["config"])
    assert any(expected in error for error in schema_errors(document)), schema_errors(document)


def test_keys_of_other_namespaces_are_left_to_their_providers():
    document = stack_file("dev")
    document["config"]["azure-native:subscriptionId"] = "00000000-0000-0000-0000-000000000000"
    assert schema_errors(document) == []
