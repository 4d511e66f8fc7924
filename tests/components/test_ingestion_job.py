"""The ingestion job under mocks: in the delegated subnet, keyless pull and sign-in, runs once, least privilege."""

from __future__ import annotations

import pytest

from components.config import ConfigError, parse_stack_config, project_keys
from components.roles import BuiltInRole
from tools.offline import ProgramRun

GROUP = "azure-native:containerinstance:ContainerGroup"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"


def job_group(program: ProgramRun):
    return program.one(GROUP, "ingestion-group")


def ingestion_identity(program: ProgramRun):
    return program.one(IDENTITY, "identities-ingestion")


def environment_of(group) -> dict[str, str]:
    (container,) = group.inputs["containers"]
    return {variable["name"]: variable["value"] for variable in container["environmentVariables"]}


def without_prefix(values: dict) -> dict:
    return project_keys(values)


def test_runs_in_the_jobs_subnet_which_is_delegated_to_container_instances(program):
    vnet = program.one("azure-native:network:VirtualNetwork")
    (subnet,) = [s for s in vnet.inputs["subnets"] if s["name"] == "snet-jobs"]
    assert [d["serviceName"] for d in subnet["delegations"]] == [ACI_DELEGATION]
    assert job_group(program).inputs["subnetIds"] == [{"id": f"{vnet.id}/subnets/snet-jobs"}]
    assert "ipAddress" not in job_group(program).inputs, "a task needs no address that others can reach"


def test_pulls_the_app_image_with_its_identity_and_no_password(program):
    group = job_group(program)
    identity = ingestion_identity(program)
    registry = program.one("azure-native:containerregistry:Registry")
    assert group.inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
    assert group.inputs["imageRegistryCredentials"] == [
        {"server": registry.outputs["loginServer"], "identity": identity.id}
    ]
    (container,) = group.inputs["containers"]
    assert container["image"] == f"{registry.outputs['loginServer']}/{program.config['aichat:appService']['image']}"


def test_runs_once_and_ingests_the_configured_documents(program):
    group = job_group(program)
    assert group.inputs["restartPolicy"] == "Never"
    assert group.inputs["osType"] == "Linux"
    (container,) = group.inputs["containers"]
    paths = program.config["aichat:ingestion"]["documentPaths"]
    # --sync: documents whose files left the image leave the database too.
    assert container["command"] == ["python", "-m", "apps.chat", "ingest", "--sync", "--", *paths]


def test_signs_in_to_postgres_as_itself_with_an_entra_token(program):
    identity = ingestion_identity(program)
    server = program.one("azure-native:dbforpostgresql:Server")
    environment = environment_of(job_group(program))
    assert environment["POSTGRES_HOST"] == server.outputs["fullyQualifiedDomainName"]
    assert environment["POSTGRES_USER"] == identity.outputs["name"]
    assert environment["AZURE_CLIENT_ID"] == identity.outputs["clientId"]
    assert environment["POSTGRES_DATABASE"] == program.config["aichat:postgres"]["databaseName"]
    assert not any("PASSWORD" in name or "KEY" in name for name in environment)


def test_its_identity_has_exactly_acr_pull_on_the_registry_and_a_postgres_admin_entry(program):
    principal_id = ingestion_identity(program).outputs["principalId"]
    registry = program.one("azure-native:containerregistry:Registry")
    grants = [(g.role_id, g.scope) for g in program.role_grants() if g.principal_id == principal_id]
    assert grants == [(BuiltInRole.ACR_PULL.value, registry.id)]
    admins = [
        a for a in program.of_type("azure-native:dbforpostgresql:Administrator") if a.inputs["objectId"] == principal_id
    ]
    assert [(a.inputs["principalName"], a.inputs["principalType"]) for a in admins] == [
        (ingestion_identity(program).outputs["name"], "ServicePrincipal")
    ]


def test_starts_only_after_its_pull_permission_and_database_admin_exist(program):
    group = job_group(program)
    pull = program.one("azure-native:authorization:RoleAssignment", "registry-ingestion-acrpull")
    principal_id = ingestion_identity(program).outputs["principalId"]
    (admin,) = [
        a for a in program.of_type("azure-native:dbforpostgresql:Administrator") if a.inputs["objectId"] == principal_id
    ]
    assert pull.urn in group.depends_on
    assert admin.urn in group.depends_on


def test_logs_go_to_log_analytics_through_a_diagnostic_setting_without_a_workspace_key(program):
    group = job_group(program)
    workspace = program.one("azure-native:operationalinsights:Workspace")
    (setting,) = [
        s for s in program.of_type("azure-native:monitor:DiagnosticSetting") if s.inputs["resourceUri"] == group.id
    ]
    assert setting.inputs["workspaceId"] == workspace.id
    # Container groups offer no category group; their two categories are named.
    assert setting.inputs["logs"] == [
        {"category": "ContainerInstanceLog", "enabled": True},
        {"category": "ContainerEvent", "enabled": True},
    ]
    assert "diagnostics" not in group.inputs, "the group's own log settings need the workspace's shared key"


def test_the_job_name_is_exported_for_operators(program):
    assert program.outputs["ingestionJobName"] == job_group(program).outputs["name"]


# ------------------------------------------------------------------------------------------------
# Runs again exactly when the image or the document source changes
# ------------------------------------------------------------------------------------------------


def group_name_with(run_with, stack_values, change) -> str:
    values = stack_values("dev")
    change(values)
    return job_group(run_with("dev", values)).inputs["containerGroupName"]


def test_a_new_image_tag_or_document_list_creates_a_new_run_and_nothing_else_does(dev, run_with, stack_values):
    current = job_group(dev).inputs["containerGroupName"]

    def new_image(values):
        values["aichat:appService"]["image"] = "chat:0123abcd"

    def new_documents(values):
        values["aichat:ingestion"]["documentPaths"] = ["apps/chat/sample_docs", "docs"]

    def more_memory(values):
        values["aichat:ingestion"]["memoryGb"] = 2

    assert group_name_with(run_with, stack_values, new_image) != current
    assert group_name_with(run_with, stack_values, new_documents) != current
    assert group_name_with(run_with, stack_values, more_memory) == current


def test_disabled_means_no_job_no_identity_and_no_grants(run_with, stack_values):
    values = stack_values("dev")
    values["aichat:ingestion"]["enabled"] = False
    run = run_with("dev", values)
    assert run.of_type(GROUP) == []
    assert [i.name for i in run.of_type(IDENTITY)] == ["identities-app"]
    assert "ingestionJobName" not in run.outputs


# ------------------------------------------------------------------------------------------------
# Config validation: each bad value names the key and what is allowed
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("documentPaths", [], "aichat:ingestion.documentPaths: the list is empty"),
        ("documentPaths", ["/etc/passwd"], "aichat:ingestion.documentPaths[0]: '/etc/passwd' is not a relative path"),
        ("documentPaths", ["docs/../../secrets"], "aichat:ingestion.documentPaths[0]: 'docs/../../secrets'"),
        ("documentPaths", "docs", "aichat:ingestion.documentPaths: expected a list"),
        ("cpu", 8, "aichat:ingestion.cpu: 8 is out of range; allowed: 0.25 to 4.0"),
        ("cpu", "lots", "aichat:ingestion.cpu: expected a number, got 'lots'"),
        ("memoryGb", 0.1, "aichat:ingestion.memoryGb: 0.1 is out of range"),
        ("enabled", "sometimes", "aichat:ingestion.enabled: expected true or false"),
        ("schedule", "daily", "aichat:ingestion: unknown key(s) schedule"),
    ],
)
def test_bad_ingestion_config_is_refused_with_the_key_named(stack_values, key, value, message):
    values = without_prefix(stack_values("dev"))
    values["ingestion"][key] = value
    with pytest.raises(ConfigError) as error:
        parse_stack_config(values, "dev")
    assert message in str(error.value)


def test_fractional_cpu_is_accepted(stack_values):
    values = without_prefix(stack_values("dev"))
    values["ingestion"]["cpu"] = 0.5
    assert parse_stack_config(values, "dev").ingestion.cpu == 0.5


def test_embeds_through_the_gateway_which_accepts_the_jobs_identity(program):
    environment = environment_of(job_group(program))
    assert environment["AZURE_OPENAI_ENDPOINT"] == program.outputs["gatewayUrl"]
    assert environment["EMBEDDING_MODEL"] == program.stack_config.openai.embedding_model.deployment_name
    client_id = ingestion_identity(program).outputs["clientId"]
    policies = [p for p in program.resources if p.type.startswith("azure-native:apimanagement:") and "Policy" in p.type]
    assert any(client_id in str(p.inputs.get("value", "")) for p in policies), "the gateway would refuse the job"
