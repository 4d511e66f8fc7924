"""The gateway's API policy: `gateway_policy.xml` filled from stack config, then checked.

`render_policy` substitutes the template's placeholders (values XML-escaped), parses the result and
refuses to return a policy that lacks any element the gateway depends on: routing to the pool,
retrying across members, managed-identity auth to OpenAI, caller token validation, the per-caller
token limit and the token metrics. So a broken template fails `pulumi preview`, not production.
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


class PolicyError(ValueError):
    """The policy template or the values for it are wrong; the message lists every problem."""


@dataclass(frozen=True)
class PolicyValues:
    pool_backend_id: str
    member_count: int  # accounts in the pool; a request may try each of them once
    tenant_id: str
    client_application_ids: Sequence[str]  # client ids of the managed identities allowed to call
    audience: str
    tokens_per_minute: int
    metric_namespace: str

    @property
    def retry_count(self) -> int:
        return self.member_count - 1


def render_policy(values: PolicyValues, template: str | None = None) -> str:
    """The policy XML for API Management (format "xml"), or PolicyError naming what is wrong."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8") if template is None else template
    root = _parse(_substitute(text, _placeholder_values(values)))
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
    application_ids = "\n".join(
        f"                <application-id>{_escaped(client_id)}</application-id>"
        for client_id in values.client_application_ids
    )
    return {
        "tenant_id": _escaped(values.tenant_id),
        "client_application_ids": application_ids,
        "audience": _escaped(values.audience),
        "tokens_per_minute": _escaped(values.tokens_per_minute),
        "metric_namespace": _escaped(values.metric_namespace),
        "openai_resource": _escaped(OPENAI_RESOURCE),
        "pool_backend_id": _escaped(values.pool_backend_id),
        "retry_count": _escaped(values.retry_count),
    }


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
    if not element.findall("dimension"):
        return f"<{element.tag}> has no <dimension> (at least one is required)"
    if element.get("namespace") != values.metric_namespace:
        return f"<{element.tag}> namespace is {element.get('namespace')!r}, expected {values.metric_namespace!r}"
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
    _check_token_metric,
    _check_managed_identity,
    _check_pool_routing,
    _check_retry,
)


def policy_problems(root: ET.Element, values: PolicyValues) -> list[str]:
    """Every way the policy falls short of what the gateway depends on (empty when it is complete)."""
    return [problem for check in POLICY_CHECKS if (problem := check(root, values))]
