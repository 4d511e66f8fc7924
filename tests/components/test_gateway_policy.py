"""The API policy: rendered from the template for each stack, and refused when anything it needs is gone."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from components.gateway_policy import (
    OPENAI_RESOURCE,
    TEMPLATE_PATH,
    PolicyError,
    PolicyValues,
    render_policy,
)
from tools.offline import FAKE_TENANT_ID

VALUES = PolicyValues(
    pool_backend_id="openai-pool",
    member_count=3,
    tenant_id="11111111-2222-3333-4444-555555555555",
    client_application_ids=("aaaaaaaa-0000-0000-0000-000000000001",),
    audience=OPENAI_RESOURCE,
    tokens_per_minute=20000,
    metric_namespace="aichat-openai",
)


# ------------------------------------------------------------------------------------------------
# The policy the program deploys
# ------------------------------------------------------------------------------------------------


def deployed_policy(program) -> ET.Element:
    policy = program.one("azure-native:apimanagement:ApiPolicy")
    assert policy.inputs["format"] == "xml"
    assert "${" not in policy.inputs["value"], "a placeholder was left in the deployed policy"
    return ET.fromstring(policy.inputs["value"])  # fails the test if it is not XML


def test_routes_to_the_pool_backend_that_exists(program):
    target = deployed_policy(program).find("inbound/set-backend-service").get("backend-id")
    pools = [b for b in program.of_type("azure-native:apimanagement:Backend") if b.inputs.get("type") == "Pool"]
    assert [p.inputs["backendId"] for p in pools] == [target]


def test_retries_once_per_other_member_on_429_and_503(program):
    members = len(program.stack_config.openai.instances)
    retry = deployed_policy(program).find("backend/retry")
    assert retry.get("count") == str(members - 1)
    assert retry.get("interval") == "0" and retry.get("first-fast-retry") == "true"
    assert "429" in retry.get("condition") and "503" in retry.get("condition")
    assert "StatusReason" not in retry.get("condition")  # reason texts change; codes do not
    assert retry.find("forward-request").get("buffer-request-body") == "true"


def test_only_this_stacks_workload_identities_from_this_tenant_may_call(program):
    validation = deployed_policy(program).find("inbound/validate-azure-ad-token")
    allowed = [e.text.strip() for e in validation.findall("client-application-ids/application-id")]
    identities = {
        r.name: r.outputs["clientId"] for r in program.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    assert validation.get("tenant-id") == FAKE_TENANT_ID
    assert identities["identities-app"] in allowed  # the chat app
    assert len(allowed) == len(set(allowed)) and set(allowed) <= set(identities.values())  # nobody else
    # The app asks for https://cognitiveservices.azure.com/.default, so that is the token's audience.
    assert [e.text for e in validation.findall("audiences/audience")] == [OPENAI_RESOURCE]


def test_calls_openai_with_the_gateway_identity(program):
    element = deployed_policy(program).find("inbound/authentication-managed-identity")
    assert element.get("resource") == "https://cognitiveservices.azure.com"


def test_limits_tokens_per_caller_and_emits_token_metrics(program):
    inbound = deployed_policy(program).find("inbound")
    limit = inbound.find("azure-openai-token-limit")
    assert limit.get("tokens-per-minute") == str(program.stack_config.gateway.tokens_per_minute_per_caller)
    assert "caller-token" in limit.get("counter-key") and "oid" in limit.get("counter-key")
    metric = inbound.find("azure-openai-emit-token-metric")
    assert metric.get("namespace") == program.stack_config.gateway.metric_namespace
    assert {d.get("name") for d in metric.findall("dimension")} >= {"API ID", "Caller", "Deployment"}


# ------------------------------------------------------------------------------------------------
# The renderer refuses a policy that lost something
# ------------------------------------------------------------------------------------------------


def template_without(tag: str) -> str:
    """The template with every <tag> element removed (placeholders kept)."""
    root = ET.fromstring(TEMPLATE_PATH.read_text())
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == tag:
                parent.remove(child)
    return ET.tostring(root, encoding="unicode")


def template_with(old: str, new: str) -> str:
    text = TEMPLATE_PATH.read_text()
    assert text.count(old) == 1, f"the template no longer contains {old!r}; update this test"
    return text.replace(old, new)


def test_the_template_renders_complete():
    root = ET.fromstring(render_policy(VALUES))
    assert root.find("backend/retry").get("count") == "2"


@pytest.mark.parametrize(
    "tag",
    [
        "validate-azure-ad-token",
        "azure-openai-token-limit",
        "azure-openai-emit-token-metric",
        "authentication-managed-identity",
        "set-backend-service",
        "retry",
        "forward-request",
        "client-application-ids",
        "audiences",
        "dimension",
    ],
)
def test_removing_a_required_element_is_refused(tag):
    with pytest.raises(PolicyError) as raised:
        render_policy(VALUES, template=template_without(tag))
    assert tag in str(raised.value)  # the message names what is missing


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('count="${retry_count}"', 'count="1"', "count = pool members - 1"),
        ("StatusCode == 503", "StatusCode == 500", "429 and 503"),
        ('buffer-request-body="true"', 'buffer-request-body="false"', "buffer-request-body"),
        ('backend-id="${pool_backend_id}"', 'backend-id="openai-swc"', "expected 'openai-pool'"),
        ('resource="${openai_resource}"', 'resource="https://management.azure.com"', "cognitiveservices"),
        ('tokens-per-minute="${tokens_per_minute}"', 'tokens-per-minute="999999"', "tokens-per-minute"),
    ],
)
def test_a_wrong_value_is_refused(old, new, expected):
    with pytest.raises(PolicyError) as raised:
        render_policy(VALUES, template=template_with(old, new))
    assert expected in str(raised.value)


def test_the_token_limit_must_follow_token_validation():
    text = TEMPLATE_PATH.read_text()
    root = ET.fromstring(text)
    inbound = root.find("inbound")
    limit = inbound.find("azure-openai-token-limit")
    inbound.remove(limit)
    inbound.insert(0, limit)
    with pytest.raises(PolicyError, match="comes before <validate-azure-ad-token>"):
        render_policy(VALUES, template=ET.tostring(root, encoding="unicode"))


def test_an_unknown_placeholder_is_named():
    with pytest.raises(PolicyError, match=r"\$\{backend_pool\} has no value"):
        render_policy(VALUES, template=template_with("${pool_backend_id}", "${backend_pool}"))


def test_a_malformed_template_is_reported():
    with pytest.raises(PolicyError, match="not well-formed XML"):
        render_policy(VALUES, template=template_with("</backend>", "</backendx>"))


def test_values_are_xml_escaped():
    tricky = PolicyValues(**{**VALUES.__dict__, "metric_namespace": 'a"b<c&d', "tenant_id": "x' onload=\"y"})
    root = ET.fromstring(render_policy(tricky))
    assert root.find("inbound/azure-openai-emit-token-metric").get("namespace") == 'a"b<c&d'
    assert root.find("inbound/validate-azure-ad-token").get("tenant-id") == "x' onload=\"y"


def test_every_allowed_caller_is_listed():
    two = PolicyValues(**{**VALUES.__dict__, "client_application_ids": ("id-one", "id-two")})
    root = ET.fromstring(render_policy(two))
    assert [e.text for e in root.findall("inbound/validate-azure-ad-token/client-application-ids/application-id")] == [
        "id-one",
        "id-two",
    ]


@pytest.mark.parametrize(
    "change, expected",
    [({"member_count": 1}, "at least 2"), ({"client_application_ids": ()}, "no client application ids")],
)
def test_values_that_cannot_work_are_refused(change, expected):
    with pytest.raises(PolicyError, match=expected):
        render_policy(PolicyValues(**{**VALUES.__dict__, **change}))
