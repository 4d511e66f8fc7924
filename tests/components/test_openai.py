"""Azure OpenAI accounts under mocks, for dev and prod: what config asks for, keyless and private."""

from __future__ import annotations

from components.private_endpoint import OPENAI

ACCOUNT = "azure-native:cognitiveservices:Account"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"


def accounts_by_instance(program) -> dict[str, object]:
    """Config instance name -> its account registration (logical names are `openai-<instance>`)."""
    return {r.name.removeprefix("openai-"): r for r in program.of_type(ACCOUNT)}


def test_one_account_per_configured_instance_in_its_region(program):
    instances = program.stack_config.openai.instances
    accounts = accounts_by_instance(program)
    assert sorted(accounts) == sorted(i.name for i in instances)
    for instance in instances:
        assert accounts[instance.name].inputs["location"] == instance.region


def test_dev_has_two_accounts_and_prod_three_in_two_regions(dev, prod):
    assert len(dev.of_type(ACCOUNT)) >= 2
    assert len(prod.of_type(ACCOUNT)) >= 3
    assert len({a.inputs["location"] for a in prod.of_type(ACCOUNT)}) >= 2


def test_accounts_are_keyless_private_and_have_a_custom_subdomain(program):
    for account in program.of_type(ACCOUNT):
        properties = account.inputs["properties"]
        assert account.inputs["kind"] == "OpenAI"
        assert properties["disableLocalAuth"] is True, account.name
        assert properties["publicNetworkAccess"] == "Disabled", account.name
        assert properties["networkAcls"]["defaultAction"] == "Deny", account.name
        # Entra tokens are only accepted on the custom subdomain.
        assert properties["customSubDomainName"] == account.inputs["accountName"]


def test_every_account_has_a_private_endpoint_in_the_vnet_region_with_the_openai_zones(program):
    endpoints = program.of_type("azure-native:network:PrivateEndpoint")
    zone_ids = {r.inputs["privateZoneName"]: r.id for r in program.of_type("azure-native:privatedns:PrivateZone")}
    for account in program.of_type(ACCOUNT):
        [endpoint] = [
            e for e in endpoints if e.inputs["privateLinkServiceConnections"][0]["privateLinkServiceId"] == account.id
        ]
        assert endpoint.inputs["privateLinkServiceConnections"][0]["groupIds"] == [OPENAI.group_id] == ["account"]
        assert endpoint.inputs["location"] == program.stack_config.location  # cross-region private link
        assert endpoint.inputs["subnet"]["id"].endswith("/subnets/snet-private-endpoints")
        [group] = [
            g
            for g in program.of_type("azure-native:network:PrivateDnsZoneGroup")
            if g.inputs["privateEndpointName"] == endpoint.outputs["name"]
        ]
        linked = {c["privateDnsZoneId"] for c in group.inputs["privateDnsZoneConfigs"]}
        assert linked == {zone_ids[zone] for zone in OPENAI.dns_zones}
        # The SDK calls <name>.openai.azure.com: that zone, by its name in Azure, must be among the linked ones.
        linked_names = {program.by_id(zone_id).inputs["privateZoneName"] for zone_id in linked}
        assert "privatelink.openai.azure.com" in linked_names


def test_each_account_deploys_the_configured_models_with_its_capacity(program):
    openai = program.stack_config.openai
    deployments = program.of_type(DEPLOYMENT)
    for instance in openai.instances:
        account = accounts_by_instance(program)[instance.name]
        mine = {
            d.inputs["deploymentName"]: d for d in deployments if d.inputs["accountName"] == account.outputs["name"]
        }
        assert sorted(mine) == sorted(m.deployment_name for m in openai.models)
        for model in openai.models:
            deployment = mine[model.deployment_name]
            assert deployment.inputs["properties"]["model"] == {
                "format": "OpenAI",
                "name": model.model_name,
                "version": model.model_version,
            }
            assert deployment.inputs["sku"] == {"name": model.sku_name, "capacity": instance.capacity_for(model)}


def test_dev_capacity_override_reaches_the_deployment(dev):
    frc = next(i for i in dev.stack_config.openai.instances if i.name == "frc")
    chat = dev.one(DEPLOYMENT, "openai-frc-chat")
    assert chat.inputs["sku"]["capacity"] == frc.capacity["chat"] != dev.stack_config.openai.chat_model.capacity


def test_deployments_on_one_account_are_created_one_after_another(program):
    for instance in program.stack_config.openai.instances:
        chat = program.one(DEPLOYMENT, f"openai-{instance.name}-chat")
        embedding = program.one(DEPLOYMENT, f"openai-{instance.name}-embedding")
        assert chat.urn in embedding.depends_on
        assert embedding.urn not in chat.depends_on


def test_every_account_sends_logs_and_metrics_to_the_workspace(program):
    diagnosed = {d.inputs["resourceUri"] for d in program.of_type("azure-native:monitor:DiagnosticSetting")}
    for account in program.of_type(ACCOUNT):
        assert account.id in diagnosed, account.name


def test_stack_output_lists_every_endpoint_with_its_region(program):
    expected = [
        {
            "name": i.name,
            "region": i.region,
            "endpoint": accounts_by_instance(program)[i.name].outputs["properties"]["endpoint"],
        }
        for i in program.stack_config.openai.instances
    ]
    assert program.outputs["openAiEndpoints"] == expected
    assert all(e["endpoint"].startswith("https://") for e in expected)


def test_each_private_endpoint_waits_for_its_accounts_model_deployments(program):
    # Azure refuses a new endpoint while deployments update the account (AccountProvisioningStateInvalid).
    for instance, account in accounts_by_instance(program).items():
        endpoint = program.one("azure-native:network:PrivateEndpoint", f"openai-{instance}-pe")
        deployments = [d for d in program.of_type(DEPLOYMENT) if d.inputs["accountName"] == account.outputs["name"]]
        assert deployments and {d.urn for d in deployments} <= set(endpoint.depends_on)


def test_accounts_let_no_trusted_azure_service_past_the_network_rules(program):
    for account in program.of_type(ACCOUNT):
        assert account.inputs["properties"]["networkAcls"]["bypass"] == "None"


def test_prod_deployments_never_change_model_version_on_their_own(prod):
    assert {d.inputs["properties"]["versionUpgradeOption"] for d in prod.of_type(DEPLOYMENT)} == {"NoAutoUpgrade"}


def test_dev_deployments_follow_azure_when_their_version_expires(dev):
    options = {d.inputs["properties"]["versionUpgradeOption"] for d in dev.of_type(DEPLOYMENT)}
    assert options == {"OnceCurrentVersionExpired"}
