"""dev and prod declare the same system; only config-driven counts and settings differ. Runs are repeatable."""

from __future__ import annotations

from collections import Counter

from tools.offline import run_program

# The documented differences between stacks (README "Config reference"): the number of Azure OpenAI
# instances, and so every resource made once per instance, and the management IP of a gateway spread over
# availability zones (aichat:gateway.zones). Everything else exists in both stacks.
ZONED_GATEWAY_ONLY = {("azure-native:network:PublicIPAddress", "gateway-management-ip")}


def instance_names(program) -> list[str]:
    return [instance["name"] for instance in program.config.get("aichat:openai", {}).get("instances", [])]


def split_per_instance(program) -> tuple[set[tuple[str, str]], Counter]:
    """(resources not tied to an OpenAI instance, shape of the per-instance resources)."""
    names = instance_names(program)
    shared, per_instance = set(), Counter()
    for resource in program.resources:
        owner = next((n for n in names if f"-{n}" in resource.name), None)
        if (resource.type, resource.name) in ZONED_GATEWAY_ONLY:
            continue  # checked in tests/components/test_gateway.py
        if owner is None:
            shared.add((resource.type, resource.name))
        else:
            per_instance[(resource.type, resource.name.replace(owner, "<instance>"))] += 1
    return shared, per_instance


# What ingress mode applicationGateway and egress mode firewall add (prod's; dev uses public and default):
# the gateway and the firewall with everything of theirs, the route tables and the gateway subnet's NSG, and
# the web app's private endpoint.
MODE_RESOURCE_PREFIXES = ("ingress-", "egress-", "network-rt-", "network-nsg-applicationGateway", "chat-site-pe")
MODE_RESOURCE_NAMES = {"chat-site-dns"}


def is_mode_resource(name: str) -> bool:
    return name.startswith(MODE_RESOURCE_PREFIXES) or name in MODE_RESOURCE_NAMES


def with_prods_ingress_and_egress(dev_values: dict, prod_values: dict) -> dict:
    """dev's stack file with prod's ingress and egress modes (and the subnets they need)."""
    values = {
        **dev_values,
        "aichat:ingress": prod_values["aichat:ingress"],
        "aichat:egress": prod_values["aichat:egress"],
    }
    values["aichat:network"]["subnets"].update(applicationGateway="10.40.5.0/24", firewall="10.40.6.0/26")
    return values


def test_dev_and_prod_register_the_same_resources_apart_from_per_instance_ones_and_the_modes(dev, prod):
    dev_shared, dev_shape = split_per_instance(dev)
    prod_shared, prod_shape = split_per_instance(prod)
    assert dev_shared <= prod_shared
    assert {name for _, name in prod_shared - dev_shared if not is_mode_resource(name)} == set()
    dev_count, prod_count = len(instance_names(dev)) or 1, len(instance_names(prod)) or 1
    assert {k: v // dev_count for k, v in dev_shape.items()} == {k: v // prod_count for k, v in prod_shape.items()}


def test_dev_with_prods_ingress_and_egress_registers_what_prod_does(prod, stack_values, run_with):
    dev_like_prod = run_with("dev", with_prods_ingress_and_egress(stack_values("dev"), stack_values("prod")))
    assert split_per_instance(dev_like_prod)[0] == split_per_instance(prod)[0]


def test_running_the_program_twice_gives_identical_names_and_role_assignments():
    first, second = run_program("dev"), run_program("dev")

    def identity(run):
        return sorted(
            (r.type, r.name, str(r.outputs.get("name")), str(r.inputs.get("roleAssignmentName"))) for r in run.resources
        )

    assert identity(first) == identity(second)
    assert first.outputs == second.outputs


def test_globally_unique_names_differ_between_stacks(dev, prod):
    for output in ("appUrl", "registryLoginServer", "postgresHost", "keyVaultUri"):
        assert dev.outputs[output] != prod.outputs[output]


def test_global_names_belong_to_one_incarnation_of_the_stack():
    """Key Vault, OpenAI and API Management keep a deleted resource's name reserved, so a stack destroyed and
    created again must not reuse its names: the incarnation (kept in state, new after a destroy) is hashed in."""
    from components.context import unique_name

    def name(incarnation: str) -> str:
        return unique_name("kv-aichat-dev", "dev", "sub", incarnation, max_length=24, alphanumeric=False)

    assert name("ab12") == name("ab12") and name("ab12") != name("cd34")
    assert len(name("ab12")) <= 24 and name("ab12").startswith("kv-aichat-dev-")


def test_the_program_names_its_key_vault_from_the_incarnation_in_its_state(dev):
    from components.context import unique_name
    from tools.offline import FAKE_SUBSCRIPTION_ID

    incarnation = dev.one("random:index/randomString:RandomString", "incarnation").outputs["result"]
    vault = dev.one("azure-native:keyvault:Vault").inputs["vaultName"]
    expected = unique_name("kv-aichat-dev", "dev", FAKE_SUBSCRIPTION_ID, incarnation, max_length=24, alphanumeric=False)
    assert vault == expected


def test_the_web_app_keeps_its_host_name_across_incarnations(dev):
    """Its host name is the sign-in registration's redirect URI and users' bookmarks; Azure frees a deleted
    web app's name at once, so it need not change when the stack is created again."""
    from components.context import unique_name
    from tools.offline import FAKE_SUBSCRIPTION_ID

    site = dev.one("azure-native:web:WebApp").inputs["name"]
    assert site == unique_name("app-aichat-dev", "dev", FAKE_SUBSCRIPTION_ID, None, max_length=60, alphanumeric=False)
