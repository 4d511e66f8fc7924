"""Canary: the SDK internals tools/offline.py relies on are still there and still behave.

Pulumi's public mocks API (`set_mocks`, `Mocks`) does not show the resource options a reviewer checks
(parent, protect, dependencies, timeouts, aliases), so the offline runner records the engine requests
itself, through a few internals. An SDK upgrade may move or change them without notice; these tests fail
first, naming the internal and what the runner does with it, instead of every program test failing at once
with an AttributeError.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version

import pulumi
import pytest
from pulumi.runtime.proto import alias_pb2, resource_pb2

from tools.offline import AzureMocks, ProgramError, run_under_mocks

SDK = f"pulumi {version('pulumi')}"

# (module, name, what tools/offline.py does with it)
INTERNALS = [
    ("pulumi.runtime.mocks", "MockMonitor", "RecordingMonitor subclasses it to keep every RegisterResource request"),
    ("pulumi.runtime.settings", "ROOT", "run_under_mocks clears the root stack resource before and after a run"),
    ("pulumi.runtime.settings", "get_root_resource", "_resolve_stack_outputs reads the stack's outputs from it"),
    ("pulumi.runtime.stack", "run_pulumi_func", "run_under_mocks runs the program and waits for its resources"),
    ("pulumi.runtime.rpc", "deserialize_properties", "_registrations turns a request's inputs into Python values"),
]
# RegisterResourceRequest fields `_registrations` reads, and the fields of the messages inside it.
REQUEST_FIELDS = {
    resource_pb2.RegisterResourceRequest: (
        "type",
        "name",
        "object",
        "parent",
        "custom",
        "protect",
        "dependencies",
        "customTimeouts",
        "aliases",
    ),
    resource_pb2.RegisterResourceRequest.CustomTimeouts: ("create", "update", "delete"),
    alias_pb2.Alias: ("spec",),
    alias_pb2.Alias.Spec: ("type",),
}


@pytest.mark.parametrize("module, name, use", INTERNALS, ids=[f"{m}.{n}" for m, n, _ in INTERNALS])
def test_each_sdk_internal_the_runner_uses_still_exists(module, name, use):
    found = getattr(importlib.import_module(module), name, None)
    assert found is not None, f"{SDK}: {module}.{name} is gone; tools/offline.py: {use}"


def test_the_mock_monitor_still_has_the_hook_the_runner_overrides():
    monitor_class = pulumi.runtime.mocks.MockMonitor
    assert callable(getattr(monitor_class, "RegisterResource", None)), (
        f"{SDK}: MockMonitor.RegisterResource is gone; tools/offline.py's RecordingMonitor overrides it"
    )
    monitor = monitor_class(AzureMocks())
    assert isinstance(getattr(monitor, "resources", None), dict), (
        f"{SDK}: MockMonitor.resources (urn -> registered state) is gone; tools/offline.py reads outputs from it"
    )


@pytest.mark.parametrize("message, fields", REQUEST_FIELDS.items(), ids=[m.__name__ for m in REQUEST_FIELDS])
def test_the_register_resource_request_still_has_the_fields_the_runner_reads(message, fields):
    missing = [field for field in fields if field not in message.DESCRIPTOR.fields_by_name]
    assert missing == [], (
        f"{SDK}: {message.DESCRIPTOR.full_name} has no field(s) {missing}; tools/offline.py reads them"
    )


def declare_two_things():
    """A parent, and a child that uses every resource option the runner records."""
    parent = pulumi.ComponentResource("canary:index:Parent", "parent")
    first = pulumi.CustomResource("canary:index:Thing", "first", {"size": 1}, pulumi.ResourceOptions(parent=parent))
    options = pulumi.ResourceOptions(
        parent=parent,
        protect=True,
        depends_on=[first],
        custom_timeouts=pulumi.CustomTimeouts(create="5m"),
        aliases=[pulumi.Alias(type_="canary:index:OldThing")],
    )
    pulumi.CustomResource("canary:index:Thing", "second", {"size": 2, "nested": {"a": "b"}}, options)


def test_a_registration_under_mocks_still_records_what_the_runner_reads():
    try:
        run = run_under_mocks("dev", declare_two_things)
    except (ProgramError, AttributeError, TypeError, KeyError) as error:
        pytest.fail(f"{SDK}: tools/offline.py can no longer record a registration: {error!r}")
    parent = run.one("canary:index:Parent", "parent")
    first, second = run.one("canary:index:Thing", "first"), run.one("canary:index:Thing", "second")
    assert (second.type, second.name, second.custom) == ("canary:index:Thing", "second", True)
    assert second.inputs == {"size": 2, "nested": {"a": "b"}}, "request.object no longer deserializes to the inputs"
    assert second.parent == parent.urn and not parent.custom
    assert second.protect is True
    assert second.depends_on == (first.urn,)
    assert second.custom_timeouts == {"create": "5m"}
    assert second.alias_types == ("canary:index:OldThing",)
    assert second.outputs["size"] == 2, "MockMonitor.resources no longer holds the state the mocks returned"
