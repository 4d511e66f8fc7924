"""The gateway's API policy: `gateway_policy.xml` filled from stack config, then checked.

`render_policy` substitutes the template's placeholders (values XML-escaped), parses the result and
refuses to return a policy that lacks any element the gateway depends on: routing to the pool,
retrying across members, managed-identity auth to OpenAI, caller token validation, the per-caller
token limit, the signed-in user's header (believed only from the chat app, checked, never forwarded),
the per-user token limit and the token metrics. So a broken template fails `pulumi preview`, not production.
"""

from __future__ import annotations

import re
import string
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

TEMPLATE_PATH = Path(__file__).with_name("gateway_policy.xml")
# The resource Azure OpenAI accepts tokens for (and the audience the app asks tokens for, without /.default).
OPENAI_RESOURCE = "https://cognitiveservices.azure.com"
# Either the Azure OpenAI-specific policy or its generic LLM twin does the job.
TOKEN_LIMIT_ELEMENTS = ("azure-openai-token-limit", "llm-token-limit")
TOKEN_METRIC_ELEMENTS = ("azure-openai-emit-token-metric", "llm-emit-token-metric")
RETRIED_STATUS_CODES = ("429", "503")
# The chat app puts the signed-in user's Entra object id here (docs/gateway.md, "Per-user budgets").
USER_HEADER = "x-aichat-user"
# The policy variable holding that id once read ("" when there is none); the per-user limit and metric use it.
USER_VARIABLE = "aichat-user"
USER_DIMENSION = "User"
# "You can configure at most 10 custom dimensions for this policy" (azure-openai-emit-token-metric, usage notes).
MAX_METRIC_DIMENSIONS = 10
# Attributes the renderer removes when their placeholder rendered empty (the per-user quota is optional).
OPTIONAL_ATTRIBUTES = ("token-quota", "token-quota-period")


class PolicyError(ValueError):
    """The policy template or the values for it are wrong; the message lists every problem."""


@dataclass(frozen=True)
class PolicyValues:
    pool_backend_id: str
    member_count: int  # accounts in the pool; a request may try each of them once
    tenant_id: str
    client_application_ids: Sequence[str]  # client ids of the managed identities allowed to call
    app_client_id: str  # the chat app's identity: the one caller whose user header is believed
    audience: str
    tokens_per_minute: int
    tokens_per_minute_per_user: int
    metric_namespace: str
    token_quota_per_user: int | None = None  # tokens per token_quota_period; None: no quota
    token_quota_period: str = "Daily"

    @property
    def retry_count(self) -> int:
        return self.member_count - 1


def render_policy(values: PolicyValues, template: str | None = None) -> str:
    """The policy XML for API Management (format "xml"), or PolicyError naming what is wrong."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8") if template is None else template
    root = _parse(_substitute(text, _placeholder_values(values)))
    _drop_empty_optional_attributes(root)
    problems = policy_problems(root, values)
    if problems:
        raise PolicyError("the gateway policy is incomplete:\n- " + "\n- ".join(problems))
    return ET.tostring(root, encoding="unicode")


def _escaped(value: object) -> str:
    """Safe inside element text and inside double-quoted attributes."""
    return escape(str(value), {'"': "&quot;"})


def _placeholder_values(values: PolicyValues) -> dict[str, str]:
    if values.member_count < 2:
        raise PolicyError(f"the pool has {values.member_count} member(s); failover needs at least 2")
    if not values.client_application_ids:
        raise PolicyError("no client application ids: nobody could call the gateway")
    if values.app_client_id not in values.client_application_ids:
        raise PolicyError(
            f"the chat app's client id {values.app_client_id!r} is not among the allowed callers "
            f"{list(values.client_application_ids)}: its users' requests would be refused"
        )
    application_ids = "\n".join(
        f"                <application-id>{_escaped(client_id)}</application-id>"
        for client_id in values.client_application_ids
    )
    return {
        "tenant_id": _escaped(values.tenant_id),
        "client_application_ids": application_ids,
        "audience": _escaped(values.audience),
        "tokens_per_minute": _escaped(values.tokens_per_minute),
        "tokens_per_minute_per_user": _escaped(values.tokens_per_minute_per_user),
        "token_quota_per_user": "" if values.token_quota_per_user is None else _escaped(values.token_quota_per_user),
        "token_quota_period": "" if values.token_quota_per_user is None else _escaped(values.token_quota_period),
        "user_header": _escaped(USER_HEADER),
        "app_client_id": _escaped(values.app_client_id),
        "metric_namespace": _escaped(values.metric_namespace),
        "openai_resource": _escaped(OPENAI_RESOURCE),
        "pool_backend_id": _escaped(values.pool_backend_id),
        "retry_count": _escaped(values.retry_count),
    }


def _drop_empty_optional_attributes(root: ET.Element) -> None:
    """A quota attribute rendered empty means "no quota": API Management wants it absent, not blank."""
    for element in root.iter():
        for name in OPTIONAL_ATTRIBUTES:
            if element.get(name) == "":
                del element.attrib[name]


def _substitute(text: str, placeholder_values: dict[str, str]) -> str:
    template = string.Template(text)
    try:
        filled = template.substitute(placeholder_values)
    except KeyError as error:
        raise PolicyError(
            f"gateway policy template: placeholder ${{{error.args[0]}}} has no value; "
            f"known placeholders: {', '.join(sorted(placeholder_values))}"
        ) from None
    except ValueError as error:  # e.g. a lone `$` or `${not valid}`
        raise PolicyError(f"gateway policy template: malformed placeholder ({error})") from None
    leftover = re.search(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", filled)
    if leftover:
        raise PolicyError(f"gateway policy: placeholder {leftover.group(0)} is left in the rendered policy")
    return filled


def _parse(text: str) -> ET.Element:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise PolicyError(f"gateway policy: not well-formed XML ({error})") from None
    if root.tag != "policies":
        raise PolicyError(f"gateway policy: the root element is <{root.tag}>, expected <policies>")
    return root


# ------------------------------------------------------------------------------------------------
# What the gateway depends on. Each check returns a problem description, or None when satisfied.
# ------------------------------------------------------------------------------------------------


def _first(section: ET.Element | None, tags: Sequence[str]) -> ET.Element | None:
    if section is None:
        return None
    return next((child for child in section if child.tag in tags), None)


def _check_token_validation(root: ET.Element, values: PolicyValues) -> str | None:
    element = _first(root.find("inbound"), ["validate-azure-ad-token"])
    if element is None:
        return "<validate-azure-ad-token> is missing from <inbound> (callers must present an Entra token)"
    if element.get("tenant-id") != values.tenant_id:
        return f"<validate-azure-ad-token> tenant-id is {element.get('tenant-id')!r}, expected {values.tenant_id!r}"
    allowed = {e.text.strip() for e in element.findall("client-application-ids/application-id") if e.text}
    if allowed != set(values.client_application_ids):
        return f"<client-application-ids> lists {sorted(allowed)}, expected {sorted(values.client_application_ids)}"
    audiences = {e.text.strip() for e in element.findall("audiences/audience") if e.text}
    if values.audience not in audiences:
        return f"<validate-azure-ad-token> <audiences> lacks {values.audience!r}"
    return None


def _check_token_limit(root: ET.Element, values: PolicyValues) -> str | None:
    inbound = root.find("inbound")
    element = _first(inbound, TOKEN_LIMIT_ELEMENTS)
    if element is None:
        return f"no token limit (<{TOKEN_LIMIT_ELEMENTS[0]}> or <{TOKEN_LIMIT_ELEMENTS[1]}>) in <inbound>"
    if element.get("tokens-per-minute") != str(values.tokens_per_minute):
        return f"<{element.tag}> tokens-per-minute is {element.get('tokens-per-minute')!r}, expected {values.tokens_per_minute}"
    if not element.get("counter-key"):
        return f"<{element.tag}> has no counter-key (the limit must be per caller)"
    validation = _first(inbound, ["validate-azure-ad-token"])
    if validation is not None and list(inbound).index(validation) > list(inbound).index(element):
        return f"<{element.tag}> comes before <validate-azure-ad-token>, whose token its counter-key reads"
    return None


def _check_token_metric(root: ET.Element, values: PolicyValues) -> str | None:
    element = _first(root.find("inbound"), TOKEN_METRIC_ELEMENTS)
    if element is None:
        return f"no token metric (<{TOKEN_METRIC_ELEMENTS[0]}> or <{TOKEN_METRIC_ELEMENTS[1]}>) in <inbound>"
    dimensions = element.findall("dimension")
    if not dimensions:
        return f"<{element.tag}> has no <dimension> (at least one is required)"
    if len(dimensions) > MAX_METRIC_DIMENSIONS:
        return f"<{element.tag}> has {len(dimensions)} <dimension> elements; API Management allows at most {MAX_METRIC_DIMENSIONS}"
    user = next((d for d in dimensions if d.get("name") == USER_DIMENSION), None)
    if user is None or USER_VARIABLE not in user.get("value", ""):
        return f'<{element.tag}> has no <dimension name="{USER_DIMENSION}"> reading the {USER_VARIABLE} variable'
    if element.get("namespace") != values.metric_namespace:
        return f"<{element.tag}> namespace is {element.get('namespace')!r}, expected {values.metric_namespace!r}"
    return None


def _position(inbound: ET.Element, matches: Callable[[ET.Element], bool]) -> int | None:
    """The index of the first direct child of <inbound> that `matches`, or None."""
    return next((index for index, child in enumerate(inbound) if matches(child)), None)


def _refuses(choose: ET.Element, status: str) -> bool:
    return any(element.get("code") == status for element in choose.findall("when/return-response/set-status"))


def _check_user_header(root: ET.Element, values: PolicyValues) -> str | None:
    """Read after token validation, believed only from the app, refused when malformed, removed before forwarding."""
    inbound = root.find("inbound")
    if inbound is None:
        return "<inbound> is missing"
    validation = _position(inbound, lambda e: e.tag == "validate-azure-ad-token")
    read = _position(
        inbound,
        lambda e: e.tag == "set-variable" and e.get("name") == USER_VARIABLE and USER_HEADER in e.get("value", ""),
    )
    if read is None:
        return f'no <set-variable name="{USER_VARIABLE}"> reading the {USER_HEADER} header in <inbound>'
    if validation is not None and read < validation:
        return f"the {USER_HEADER} header is read before <validate-azure-ad-token>"
    app_check = _position(inbound, lambda e: e.tag == "set-variable" and values.app_client_id in e.get("value", ""))
    if app_check is None:
        return f"no <set-variable> compares the caller's client id with the chat app's ({values.app_client_id})"
    delete = _position(
        inbound,
        lambda e: e.tag == "set-header" and e.get("name") == USER_HEADER and e.get("exists-action") == "delete",
    )
    routing = _position(inbound, lambda e: e.tag == "set-backend-service")
    if delete is None or delete < read or (routing is not None and delete > routing):
        return (
            f'<set-header name="{USER_HEADER}" exists-action="delete"> must come after reading it and before '
            "<set-backend-service> (the header is never forwarded)"
        )
    refusal = _position(inbound, lambda e: e.tag == "choose" and _refuses(e, "403") and _refuses(e, "400"))
    limit = _position(inbound, lambda e: e.tag in TOKEN_LIMIT_ELEMENTS)
    if refusal is None or refusal < read or (limit is not None and refusal > limit):
        return (
            "a <choose> answering 403 (user header from a caller other than the app) and 400 (not a GUID) "
            "<return-response> must come after reading the header and before the token limits"
        )
    return None


def _check_user_token_limit(root: ET.Element, values: PolicyValues) -> str | None:
    """A second token limit, keyed on the user, inside a <choose> that runs it only when there is a user."""
    inbound = root.find("inbound")
    whens = [] if inbound is None else inbound.findall("choose/when")
    found = [(when, element) for when in whens for element in when if element.tag in TOKEN_LIMIT_ELEMENTS]
    if not found:
        return f"no per-user token limit (<{TOKEN_LIMIT_ELEMENTS[0]}> in a <choose><when>) in <inbound>"
    when, element = found[0]
    if USER_VARIABLE not in when.get("condition", "") or USER_VARIABLE not in element.get("counter-key", ""):
        return f"the per-user <{element.tag}> must run only when there is a user and be keyed on {USER_VARIABLE}"
    expected = {
        "tokens-per-minute": str(values.tokens_per_minute_per_user),
        "token-quota": None if values.token_quota_per_user is None else str(values.token_quota_per_user),
        "token-quota-period": None if values.token_quota_per_user is None else values.token_quota_period,
    }
    wrong = {name: element.get(name) for name, value in expected.items() if element.get(name) != value}
    if wrong:
        return f"the per-user <{element.tag}> has {wrong}, expected {expected}"
    return None


def _inbound_attribute_problem(root: ET.Element, tag: str, attribute: str, expected: str, purpose: str) -> str | None:
    """A problem unless <inbound> holds <tag> with `attribute` equal to `expected`."""
    element = _first(root.find("inbound"), [tag])
    if element is None:
        return f"<{tag}> is missing from <inbound> ({purpose})"
    if element.get(attribute) != expected:
        return f"<{tag}> {attribute} is {element.get(attribute)!r}, expected {expected!r} ({purpose})"
    return None


def _check_managed_identity(root: ET.Element, values: PolicyValues) -> str | None:
    return _inbound_attribute_problem(
        root, "authentication-managed-identity", "resource", OPENAI_RESOURCE, "the gateway must call OpenAI keylessly"
    )


def _check_pool_routing(root: ET.Element, values: PolicyValues) -> str | None:
    return _inbound_attribute_problem(
        root, "set-backend-service", "backend-id", values.pool_backend_id, "requests must go to the pool"
    )


def _check_retry(root: ET.Element, values: PolicyValues) -> str | None:
    retry = _first(root.find("backend"), ["retry"])
    if retry is None:
        return "<retry> is missing from <backend> (a throttled member must not fail the request)"
    expected = {"count": str(values.retry_count), "interval": "0", "first-fast-retry": "true"}
    wrong = {name: retry.get(name) for name, value in expected.items() if retry.get(name) != value}
    if wrong:
        return f"<retry> has {wrong}, expected {expected} (count = pool members - 1)"
    condition = retry.get("condition", "")
    if "StatusCode" not in condition or not all(code in condition for code in RETRIED_STATUS_CODES):
        return f"<retry> condition {condition!r} must test the status code for {' and '.join(RETRIED_STATUS_CODES)}"
    forward = retry.find("forward-request")
    if forward is None or forward.get("buffer-request-body") != "true":
        return '<retry> must wrap <forward-request buffer-request-body="true"> (the body is re-sent on retry)'
    return None


POLICY_CHECKS: tuple[Callable[[ET.Element, PolicyValues], str | None], ...] = (
    _check_token_validation,
    _check_token_limit,
    _check_user_header,
    _check_user_token_limit,
    _check_token_metric,
    _check_managed_identity,
    _check_pool_routing,
    _check_retry,
)


def policy_problems(root: ET.Element, values: PolicyValues) -> list[str]:
    """Every way the policy falls short of what the gateway depends on (empty when it is complete)."""
    return [problem for check in POLICY_CHECKS if (problem := check(root, values))]
