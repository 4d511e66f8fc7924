"""PostgreSQL: Entra-only auth, pgvector allow-listed, TLS, private; per-stack resilience."""

from __future__ import annotations

import itertools


def server(program):
    return program.one("azure-native:dbforpostgresql:Server")


def test_authentication_is_entra_only(program):
    inputs = server(program).inputs
    assert inputs["authConfig"]["activeDirectoryAuth"] == "Enabled"
    assert inputs["authConfig"]["passwordAuth"] == "Disabled"
    assert "administratorLogin" not in inputs and "administratorLoginPassword" not in inputs


def test_server_has_no_public_network_access(program):
    assert server(program).inputs["network"]["publicNetworkAccess"] == "Disabled"


def test_pgvector_is_allow_listed_and_tls_required(program):
    parameters = {
        c.inputs["configurationName"]: c.inputs["value"]
        for c in program.of_type("azure-native:dbforpostgresql:Configuration")
    }
    assert parameters["azure.extensions"] == "VECTOR"
    assert parameters["require_secure_transport"] == "ON"


def test_server_updates_run_one_after_another(program):
    """The server rejects concurrent updates: admins, parameters and the database form one chain."""
    chain = (
        program.of_type("azure-native:dbforpostgresql:Administrator")
        + program.of_type("azure-native:dbforpostgresql:Configuration")
        + program.of_type("azure-native:dbforpostgresql:Database")
    )
    for earlier, later in itertools.pairwise(chain):
        assert earlier.urn in later.depends_on, f"{later.name} does not wait for {earlier.name}"


def test_the_app_identity_is_an_entra_administrator_and_only_workloads_or_configured_admins_are(program):
    identities = {
        i.outputs["principalId"]: i for i in program.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    configured = {a["objectId"] for a in program.config["aichat:postgres"].get("extraAdmins", [])}
    admins = program.of_type("azure-native:dbforpostgresql:Administrator")
    app = program.one("azure-native:managedidentity:UserAssignedIdentity", "identities-app")
    assert (app.outputs["principalId"], app.outputs["name"], "ServicePrincipal") in {
        (a.inputs["objectId"], a.inputs["principalName"], a.inputs["principalType"]) for a in admins
    }
    for admin in admins:
        object_id = admin.inputs["objectId"]
        assert object_id in identities or object_id in configured, f"unexpected PostgreSQL admin {object_id}"
        if object_id in identities:
            assert admin.inputs["principalName"] == identities[object_id].outputs["name"]


def test_app_database_exists(program):
    database = program.one("azure-native:dbforpostgresql:Database")
    assert database.inputs["databaseName"] == program.config["aichat:postgres"]["databaseName"]


def test_prod_is_zone_redundant_and_geo_backed_up_dev_is_not(dev, prod):
    assert server(prod).inputs["highAvailability"]["mode"] == "ZoneRedundant"
    assert server(prod).inputs["backup"]["geoRedundantBackup"] == "Enabled"
    assert server(dev).inputs["highAvailability"]["mode"] == "Disabled"
    assert server(dev).inputs["backup"]["geoRedundantBackup"] == "Disabled"


def test_sku_storage_and_retention_come_from_config(program):
    inputs, settings = server(program).inputs, program.config["aichat:postgres"]
    assert inputs["sku"] == {"name": settings["skuName"], "tier": settings["tier"]}
    assert inputs["storage"]["storageSizeGB"] == settings["storageSizeGb"]
    assert inputs["backup"]["backupRetentionDays"] == settings["backupRetentionDays"]


def test_server_is_protected_in_prod_only(dev, prod):
    assert server(prod).protect is True
    assert server(dev).protect is False


def test_extra_admins_from_config_are_added(stack_values, run_with):
    values = stack_values("dev")
    values["aichat:postgres"]["extraAdmins"] = [
        {"objectId": "11111111-2222-3333-4444-555555555555", "principalName": "db-admins", "principalType": "Group"}
    ]
    admins = run_with("dev", values).of_type("azure-native:dbforpostgresql:Administrator")
    assert ("11111111-2222-3333-4444-555555555555", "Group") in {
        (a.inputs["objectId"], a.inputs["principalType"]) for a in admins
    }
