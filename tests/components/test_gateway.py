"""API Management in front of the OpenAI accounts, under mocks for dev and prod."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from components.gateway import API_PATH, POOL_BACKEND_ID
from components.roles import BuiltInRole

SERVICE = "azure-native:apimanagement:ApiManagementService"
BACKEND = "azure-native:apimanagement:Backend"
ACCOUNT = "azure-native:cognitiveservices:Account"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"


def service(program):
    return program.one(SERVICE)


def gateway_principal(program) -> str:
    return service(program).outputs["identity"]["principalId"]


def member_backends(program) -> list:
    return [b for b in program.of_type(BACKEND) if b.inputs.get("type") != "Pool"]


def pool_backend(program):
    [pool] = [b for b in program.of_type(BACKEND) if b.inputs.get("type") == "Pool"]
    return pool


def account_for_instance(program, instance_name: str):
    return program.one(ACCOUNT, f"openai-{instance_name}")


def test_classic_tier_per_stack_in_internal_vnet_mode(program):
    apim = service(program)
    expected_sku = {"dev": "Developer", "prod": "Premium"}[program.stack]
    assert apim.inputs["sku"] == {"name": expected_sku, "capacity": program.stack_config.gateway.capacity}
    assert apim.inputs["virtualNetworkType"] == "Internal"
    assert apim.inputs["virtualNetworkConfiguration"]["subnetResourceId"].endswith("/subnets/snet-apim")
    assert apim.inputs["identity"]["type"] == "SystemAssigned"


def test_long_create_is_allowed_for(program):
    assert service(program).custom_timeouts["create"] == "120m"


def test_old_tls_protocols_are_off(program):
    properties = service(program).inputs["customProperties"]
    assert properties["Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10"] == "False"
    assert properties["Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls11"] == "False"


def test_private_dns_resolves_every_service_host_name_to_the_private_ip(program):
    apim = service(program)
    private_ip = apim.outputs["privateIPAddresses"][0]
    zone = program.one("azure-native:privatedns:PrivateZone", "gateway-dns-azure-api-net")
    assert zone.inputs["privateZoneName"] == "azure-api.net"
    [link] = [
        r
        for r in program.of_type("azure-native:privatedns:VirtualNetworkLink")
        if r.inputs["privateZoneName"] == "azure-api.net"
    ]
    assert link.inputs["virtualNetwork"]["id"] == program.one("azure-native:network:VirtualNetwork").id
    records = {
        r.inputs["relativeRecordSetName"]: r
        for r in program.of_type("azure-native:privatedns:PrivateRecordSet")
        if r.inputs["privateZoneName"] == "azure-api.net"
    }
    name = apim.outputs["name"]
    # The host names API Management serves in internal mode (Microsoft's internal VNet guide), written out
    # here rather than read from the component, so a host the component forgets fails this test.
    served = [name, f"{name}.portal", f"{name}.developer", f"{name}.management", f"{name}.scm"]
    assert sorted(records) == sorted(served)
    for record in records.values():
        assert record.inputs["recordType"] == "A"
        assert record.inputs["aRecords"] == [{"ipv4Address": private_ip}]


def test_one_member_backend_per_account_pointing_at_its_openai_path(program):
    members = {b.inputs["backendId"]: b for b in member_backends(program)}
    instances = program.stack_config.openai.instances
    assert sorted(members) == sorted(f"openai-{i.name}" for i in instances)
    for instance in instances:
        endpoint = account_for_instance(program, instance.name).outputs["properties"]["endpoint"]
        member = members[f"openai-{instance.name}"]
        assert member.inputs["url"] == endpoint.rstrip("/") + "/openai"
        assert member.inputs["protocol"] == "http"


def test_every_member_has_a_circuit_breaker_for_429_and_5xx_that_honours_retry_after(program):
    settings = program.stack_config.gateway.circuit_breaker
    for member in member_backends(program):
        [rule] = member.inputs["circuitBreaker"]["rules"]
        assert rule["acceptRetryAfter"] is True, member.name
        assert rule["tripDuration"] == settings.trip_duration
        condition = rule["failureCondition"]
        ranges = {(r["min"], r["max"]) for r in condition["statusCodeRanges"]}
        assert ranges == {(429, 429), (500, 599)}, member.name
        assert condition["count"] == settings.failure_count
        assert condition["interval"] == settings.failure_interval


def test_pool_lists_exactly_the_members_with_configured_priority_and_weight(program):
    pool = pool_backend(program)
    assert pool.inputs["backendId"] == POOL_BACKEND_ID
    assert "url" not in pool.inputs and "protocol" not in pool.inputs  # Azure rejects both on a pool
    listed = {s["id"]: s for s in pool.inputs["pool"]["services"]}
    members = {b.id: b for b in member_backends(program)}
    assert set(listed) == set(members)
    for instance in program.stack_config.openai.instances:
        [member_id] = [i for i, b in members.items() if b.inputs["backendId"] == f"openai-{instance.name}"]
        assert (listed[member_id]["priority"], listed[member_id]["weight"]) == (instance.priority, instance.weight)


def test_gateway_identity_holds_exactly_openai_user_on_each_account_and_metrics_publisher_on_app_insights(program):
    principal = gateway_principal(program)
    grants = {(g.role_id, g.scope) for g in program.role_grants() if g.principal_id == principal}
    app_insights = program.one("azure-native:resources:Resource", "observability-appinsights").id
    expected = {(BuiltInRole.COGNITIVE_SERVICES_OPENAI_USER.value, a.id) for a in program.of_type(ACCOUNT)}
    expected.add((BuiltInRole.MONITORING_METRICS_PUBLISHER.value, app_insights))
    assert grants == expected


def test_nobody_else_gets_openai_roles_on_the_accounts(program):
    accounts = {a.id for a in program.of_type(ACCOUNT)}
    holders = {g.principal_id for g in program.role_grants() if g.scope in accounts}
    assert holders == {gateway_principal(program)}


def test_logger_uses_the_managed_identity_not_an_instrumentation_key(program):
    logger = program.one("azure-native:apimanagement:Logger")
    assert logger.inputs["loggerType"] == "applicationInsights"
    assert logger.inputs["credentials"]["identityClientId"] == "SystemAssigned"
    assert "instrumentationKey" not in logger.inputs["credentials"]
    assert logger.inputs["resourceId"] == program.one("azure-native:resources:Resource", "observability-appinsights").id
    publisher = next(a for a in program.of_type(ROLE_ASSIGNMENT) if a.name == "gateway-metrics-publisher")
    assert publisher.urn in logger.depends_on  # the role exists before the logger first writes


def test_api_diagnostics_send_metrics_to_the_logger_without_bodies(program):
    diagnostic = program.one("azure-native:apimanagement:ApiDiagnostic")
    assert diagnostic.inputs["loggerId"] == program.one("azure-native:apimanagement:Logger").id
    assert diagnostic.inputs["metrics"] is True  # custom metrics with dimensions (token metrics)
    for side in ("frontend", "backend"):
        for message in ("request", "response"):
            assert diagnostic.inputs[side][message]["body"]["bytes"] == 0


def test_service_diagnostic_settings_go_to_the_workspace(program):
    apim = service(program)
    assert any(d.inputs["resourceUri"] == apim.id for d in program.of_type("azure-native:monitor:DiagnosticSetting"))


def test_api_needs_no_subscription_key_and_serves_https(program):
    api = program.one("azure-native:apimanagement:Api")
    assert api.inputs["path"] == API_PATH
    assert api.inputs["subscriptionRequired"] is False
    assert api.inputs["protocols"] == ["https"]


def _operation_for(program, path: str):
    """The API operation whose url template matches `path` below the API's base path (None if none)."""
    relative = path.removeprefix(f"/{API_PATH}")
    for operation in program.of_type("azure-native:apimanagement:ApiOperation"):
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(operation.inputs["urlTemplate"]))
        if re.fullmatch(pattern, relative):
            return operation
    return None


@pytest.mark.parametrize("call", ["chat", "embeddings"])
def test_the_apps_openai_client_reaches_an_operation_unchanged(program, call):
    """Point the SDK the app uses at the gateway URL and check the request it sends matches an operation."""
    sent: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    gateway_url = program.outputs["gatewayUrl"]
    client = openai.AzureOpenAI(
        azure_endpoint=gateway_url,
        api_version="2024-10-21",
        azure_ad_token="token",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(capture)),
    )
    models = program.stack_config.openai
    with pytest.raises(openai.APIStatusError):
        if call == "chat":
            client.chat.completions.create(
                model=models.chat_model.deployment_name, messages=[{"role": "user", "content": "hi"}]
            )
        else:
            client.embeddings.create(model=models.embedding_model.deployment_name, input=["hi"])
    [request] = sent
    assert str(request.url).startswith(gateway_url)
    operation = _operation_for(program, request.url.path)
    assert operation is not None, f"no API operation serves {request.method} {request.url.path}"
    assert operation.inputs["method"] == request.method
    assert request.url.params["api-version"] == "2024-10-21"
    assert "api-version" in {q["name"] for q in operation.inputs["request"]["queryParameters"]}


def test_app_is_pointed_at_the_gateway_with_the_configured_deployments(program):
    site = program.one("azure-native:web:WebApp")
    settings = {s["name"]: s["value"] for s in site.inputs["siteConfig"]["appSettings"]}
    assert settings["AZURE_OPENAI_ENDPOINT"] == program.outputs["gatewayUrl"] == service(program).outputs["gatewayUrl"]
    assert settings["CHAT_MODEL"] == program.stack_config.openai.chat_model.deployment_name
    assert settings["EMBEDDING_MODEL"] == program.stack_config.openai.embedding_model.deployment_name


def test_prod_spreads_at_least_two_gateway_units_over_at_least_two_zones(prod):
    service = prod.one("azure-native:apimanagement:ApiManagementService").inputs
    assert service["sku"]["capacity"] >= 2 and len(service["zones"]) >= 2
    assert service["sku"]["capacity"] % len(service["zones"]) == 0  # units split evenly over the zones


def test_a_zoned_gateway_has_a_zone_redundant_standard_management_ip(prod):
    service = prod.one("azure-native:apimanagement:ApiManagementService").inputs
    address = prod.one("azure-native:network:PublicIPAddress", "gateway-management-ip")
    assert service["publicIpAddressId"] == address.id
    assert address.inputs["sku"]["name"] == "Standard" and address.inputs["zones"] == ["1", "2", "3"]
    assert address.inputs["dnsSettings"]["domainNameLabel"]


def test_a_gateway_without_zones_has_no_public_ip(dev):
    assert "zones" not in dev.one("azure-native:apimanagement:ApiManagementService").inputs
    assert dev.of_type("azure-native:network:PublicIPAddress") == []
