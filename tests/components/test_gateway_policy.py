"""The API policy: rendered from the template for each stack, and refused when anything it needs is gone."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from components.gateway_policy import (
    MAX_METRIC_DIMENSIONS,
    OPENAI_RESOURCE,
    TEMPLATE_PATH,
    USER_HEADER,
    USER_VARIABLE,
    PolicyError,
    PolicyValues,
    render_policy,
)
from tools.offline import FAKE_TENANT_ID

APP_CLIENT_ID = "aaaaaaaa-0000-0000-0000-000000000001"
JOB_CLIENT_ID = "bbbbbbbb-0000-0000-0000-000000000002"
VALUES = PolicyValues(
    pool_backend_id="openai-pool",
    member_count=3,
    tenant_id="11111111-2222-3333-4444-555555555555",
    client_application_ids=(APP_CLIENT_ID, JOB_CLIENT_ID),
    app_client_id=APP_CLIENT_ID,
    audience=OPENAI_RESOURCE,
    tokens_per_minute=20000,
    tokens_per_minute_per_user=5000,
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
    assert {d.get("name") for d in metric.findall("dimension")} >= {"API ID", "Caller", "User", "Deployment"}


def test_believes_the_user_header_only_from_the_app_identity(program):
    inbound = deployed_policy(program).find("inbound")
    identities = {
        r.name: r.outputs["clientId"] for r in program.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    (app_check,) = [e for e in inbound.findall("set-variable") if e.get("name") == "aichat-caller-is-app"]
    assert identities["identities-app"] in app_check.get("value")
    # The ingestion job (and any other workload) is an allowed caller, but never a source of users.
    others = [client_id for name, client_id in identities.items() if name != "identities-app"]
    assert others and not any(client_id in app_check.get("value") for client_id in others)


def test_limits_tokens_per_user_from_the_stack_config(program):
    gateway = program.stack_config.gateway
    limit = deployed_policy(program).find("inbound/choose/when/azure-openai-token-limit")
    assert limit.get("tokens-per-minute") == str(gateway.tokens_per_minute_per_user)
    assert limit.get("token-quota") == str(gateway.token_quota_per_user)
    assert limit.get("token-quota-period") == gateway.token_quota_period


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
        "set-variable",
        "set-header",
        "choose",
        "return-response",
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
        ('tokens-per-minute="${tokens_per_minute_per_user}"', 'tokens-per-minute="999999"', "per-user"),
        ('<dimension name="User"', '<dimension name="Person"', 'name="User"'),
        (
            'name="${user_header}" exists-action="delete"',
            'name="${user_header}" exists-action="skip"',
            "never forwarded",
        ),
        ('<set-status code="400"', '<set-status code="422"', "400 (not a GUID)"),
        ('<set-status code="403"', '<set-status code="200"', "403 (user header"),
        ("&quot;user:&quot; + (string)context.Variables[&quot;aichat-user&quot;]", "&quot;everyone&quot;", "keyed on"),
        ("${app_client_id}", JOB_CLIENT_ID, "compares the caller's client id"),
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
    two = PolicyValues(**{**VALUES.__dict__, "client_application_ids": ("id-one", "id-two"), "app_client_id": "id-one"})
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


# ------------------------------------------------------------------------------------------------
# The signed-in user: read after validation, refused unless from the app and a GUID, never forwarded
# ------------------------------------------------------------------------------------------------


def rendered_inbound(values: PolicyValues = VALUES) -> list[ET.Element]:
    return list(ET.fromstring(render_policy(values)).find("inbound"))


def index_of(inbound: list[ET.Element], tag: str, **attributes: str) -> int:
    return next(i for i, e in enumerate(inbound) if e.tag == tag and all(e.get(k) == v for k, v in attributes.items()))


def test_the_inbound_steps_run_in_order():
    inbound = rendered_inbound()
    steps = [
        index_of(inbound, "validate-azure-ad-token"),
        index_of(inbound, "set-variable", name=USER_VARIABLE),
        index_of(inbound, "set-header", name=USER_HEADER),
        next(i for i, e in enumerate(inbound) if e.tag == "choose" and e.find("when/return-response") is not None),
        index_of(inbound, "azure-openai-token-limit"),  # per caller
        next(i for i, e in enumerate(inbound) if e.find("when/azure-openai-token-limit") is not None),  # per user
        index_of(inbound, "azure-openai-emit-token-metric"),
        index_of(inbound, "authentication-managed-identity"),
        index_of(inbound, "set-backend-service"),
    ]
    assert steps == sorted(steps)


def test_the_user_header_is_read_then_deleted_before_forwarding():
    inbound = rendered_inbound()
    read = inbound[index_of(inbound, "set-variable", name=USER_VARIABLE)]
    assert f'Headers.GetValueOrDefault("{USER_HEADER}"' in read.get("value")
    delete = inbound[index_of(inbound, "set-header", name=USER_HEADER)]
    assert delete.get("exists-action") == "delete"
    assert not [
        e for e in inbound[index_of(inbound, "set-header", name=USER_HEADER) + 1 :] if e.get("name") == USER_HEADER
    ]


def test_a_header_after_the_backend_is_chosen_is_refused():
    root = ET.fromstring(TEMPLATE_PATH.read_text())
    inbound = root.find("inbound")
    delete = next(e for e in inbound if e.tag == "set-header")
    inbound.remove(delete)
    inbound.append(delete)  # after set-backend-service: too late, the header is already on its way
    with pytest.raises(PolicyError, match="never forwarded"):
        render_policy(VALUES, template=ET.tostring(root, encoding="unicode"))


def test_the_app_is_recognised_by_its_token_client_id():
    inbound = rendered_inbound()
    app_check = inbound[index_of(inbound, "set-variable", name="aichat-caller-is-app")].get("value")
    assert f'"{APP_CLIENT_ID}"' in app_check and JOB_CLIENT_ID not in app_check
    assert '"caller-token"' in app_check  # the validated token, not anything the caller wrote
    assert '"appid"' in app_check and '"azp"' in app_check  # v1 and v2 access tokens


def test_a_user_from_another_caller_gets_403_and_a_malformed_one_400():
    inbound = rendered_inbound()
    (refusals,) = [e for e in inbound if e.tag == "choose" and e.find("when/return-response") is not None]
    first, second = refusals.findall("when")
    assert "aichat-caller-is-app" in first.get("condition") and USER_VARIABLE in first.get("condition")
    assert first.find("return-response/set-status").get("code") == "403"
    assert "Regex.IsMatch" in second.get("condition")
    assert r"\A[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\z" in second.get("condition")
    assert second.find("return-response/set-status").get("code") == "400"
    assert USER_HEADER in second.find("return-response/set-body").text


def test_the_user_limit_is_keyed_on_the_user_and_runs_only_with_one():
    inbound = rendered_inbound()
    (when,) = [e.find("when") for e in inbound if e.find("when/azure-openai-token-limit") is not None]
    assert when.get("condition") == f'@(((string)context.Variables["{USER_VARIABLE}"]).Length > 0)'
    (limit,) = when.findall("azure-openai-token-limit")
    assert limit.get("counter-key") == f'@("user:" + (string)context.Variables["{USER_VARIABLE}"])'
    assert limit.get("tokens-per-minute") == "5000"
    assert limit.get("remaining-tokens-header-name") != "x-ratelimit-remaining-tokens"  # the per-caller header
    assert limit.get("token-quota") is None and limit.get("token-quota-period") is None


def test_the_ingestion_job_path_has_no_user_and_only_the_per_caller_limit():
    inbound = rendered_inbound()
    # Unconditional steps: the per-caller limit keyed on the token, whoever calls.
    per_caller = inbound[index_of(inbound, "azure-openai-token-limit")]
    assert "caller-token" in per_caller.get("counter-key") and USER_VARIABLE not in per_caller.get("counter-key")
    # No header: the variable is empty, so no refusal fires, the per-user limit is skipped and User is "none".
    read = inbound[index_of(inbound, "set-variable", name=USER_VARIABLE)].get("value")
    assert 'GetValueOrDefault("x-aichat-user", "")' in read
    conditions = [w.get("condition") for c in inbound if c.tag == "choose" for w in c.findall("when")]
    assert conditions and all(f'context.Variables["{USER_VARIABLE}"]).Length > 0' in c for c in conditions)
    metric = inbound[index_of(inbound, "azure-openai-emit-token-metric")]
    (user,) = [d for d in metric.findall("dimension") if d.get("name") == "User"]
    assert '"none"' in user.get("value")


def test_a_user_quota_is_rendered_when_configured():
    with_quota = PolicyValues(**{**VALUES.__dict__, "token_quota_per_user": 300000, "token_quota_period": "Weekly"})
    inbound = rendered_inbound(with_quota)
    (limit,) = [
        e.find("when/azure-openai-token-limit") for e in inbound if e.find("when/azure-openai-token-limit") is not None
    ]
    assert (limit.get("token-quota"), limit.get("token-quota-period")) == ("300000", "Weekly")


def test_the_metric_keeps_within_the_dimension_limit():
    dimensions = ET.fromstring(render_policy(VALUES)).findall("inbound/azure-openai-emit-token-metric/dimension")
    assert len(dimensions) <= MAX_METRIC_DIMENSIONS
    extra = "".join(f'<dimension name="d{i}" value="x" />' for i in range(MAX_METRIC_DIMENSIONS))
    with pytest.raises(PolicyError, match="at most 10"):
        render_policy(
            VALUES, template=template_with('<dimension name="API ID" />', '<dimension name="API ID" />' + extra)
        )


def test_the_app_must_be_an_allowed_caller():
    with pytest.raises(PolicyError, match="not among the allowed callers"):
        render_policy(PolicyValues(**{**VALUES.__dict__, "client_application_ids": (JOB_CLIENT_ID,)}))
