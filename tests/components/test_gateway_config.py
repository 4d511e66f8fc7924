"""Bad `aichat:openai` / `aichat:gateway` config fails with a message naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from components.config import parse_stack_config
from tests.components.config_errors import error_for
from tools.offline import ProgramError


def instance(name: str, region: str, priority: int = 1, weight: int = 50) -> dict:
    return {"name": name, "region": region, "priority": priority, "weight": weight}


@pytest.mark.parametrize("stack, accounts, regions", [("dev", 2, 1), ("prod", 3, 2)])
def test_stack_files_meet_the_minimum_accounts_and_regions(values, stack, accounts, regions):
    openai = parse_stack_config(values(stack), stack).openai
    assert len(openai.instances) >= accounts and len(openai.regions) >= regions


def test_no_instances(values):
    config = values()
    config["openai"]["instances"] = []
    assert "aichat:openai.instances: no instances" in error_for(config)


def test_missing_openai_section(values):
    config = values()
    del config["openai"]
    assert "aichat:openai is required but not set" in error_for(config)


def test_duplicate_instance_names(values):
    config = values()
    config["openai"]["instances"][1]["name"] = config["openai"]["instances"][0]["name"]
    message = error_for(config)
    assert "aichat:openai.instances: duplicate instance name(s) swc" in message


@pytest.mark.parametrize("priority", [0, -1, 101])
def test_priority_out_of_range(values, priority):
    config = values()
    config["openai"]["instances"][0]["priority"] = priority
    message = error_for(config)
    assert f"aichat:openai.instances[0].priority: {priority} is out of range; allowed: 1 to 100" in message


@pytest.mark.parametrize("weight", [0, 101, 1000])
def test_weight_out_of_range(values, weight):
    config = values()
    config["openai"]["instances"][1]["weight"] = weight
    message = error_for(config)
    assert f"aichat:openai.instances[1].weight: {weight} is out of range; allowed: 1 to 100" in message


def test_unknown_model(values):
    config = values()
    config["openai"]["models"]["chat"]["model"] = "gpt-5-ultra"
    message = error_for(config)
    assert "aichat:openai.models.chat.model: 'gpt-5-ultra' is not in the platform catalogue" in message
    assert "gpt-5.4-mini" in message  # lists what the catalogue knows
    assert "aichat:openai.models.chat.skipCatalogCheck: true" in message  # and the explicit way past it


def test_model_in_the_wrong_role(values):
    config = values()
    config["openai"]["models"]["embedding"].update(model="gpt-5.4-mini", deployment="embedding")
    message = error_for(config)
    assert "aichat:openai.models.embedding.model: 'gpt-5.4-mini' is a chat model" in message


def test_ada_embeddings_are_refused_because_the_app_sends_dimensions(values):
    config = values()
    config["openai"]["models"]["embedding"]["model"] = "text-embedding-ada-002"
    assert "cannot serve as the embedding model" in error_for(config)


def test_same_deployment_name_for_both_models(values):
    config = values()
    config["openai"]["models"]["embedding"]["deployment"] = config["openai"]["models"]["chat"]["model"]
    assert "the two deployments need different names" in error_for(config)


def test_unknown_deployment_sku(values):
    config = values()
    config["openai"]["models"]["chat"]["sku"] = "Premium"
    assert "aichat:openai.models.chat.sku: 'Premium' is not allowed" in error_for(config)


def test_a_region_twice_is_refused_unless_allowed(values):
    config = values()
    config["openai"]["instances"] = [instance("swc", "swedencentral"), instance("swc2", "swedencentral")]
    message = error_for(config)
    assert "aichat:openai.instances: region(s) swedencentral listed more than once" in message
    assert "allowSharedRegion" in message
    config["openai"]["allowSharedRegion"] = True
    assert len(parse_stack_config(config, "dev").openai.instances) == 2


def test_dev_needs_two_accounts(values):
    config = values()
    config["openai"]["instances"] = config["openai"]["instances"][:1]
    assert "1 instance(s) for a dev stack; at least 2 are needed" in error_for(config)


def test_prod_needs_three_accounts(values):
    config = values("prod")
    config["openai"]["instances"] = config["openai"]["instances"][:2]
    assert "2 instance(s) for a prod stack; at least 3 are needed" in error_for(config, "prod")


def test_prod_needs_two_regions(values):
    config = values("prod")
    config["openai"]["allowSharedRegion"] = True
    config["openai"]["instances"] = [instance(f"swc{i}", "swedencentral") for i in range(3)]
    assert "all instances are in swedencentral; a prod stack needs accounts in at least 2 regions" in error_for(
        config, "prod"
    )


def test_a_misspelt_instance_key_is_named(values):
    config = values()
    config["openai"]["instances"][0]["weigth"] = 10
    assert "aichat:openai.instances[0]: unknown key(s) weigth" in error_for(config)


def test_capacity_override_for_an_unknown_role(values):
    config = values()
    config["openai"]["instances"][0]["capacity"] = {"chats": 5}
    assert "aichat:openai.instances[0].capacity: unknown key(s) chats" in error_for(config)


@pytest.mark.parametrize(
    "stack, path, value, expected",
    [
        ("prod", ["sku"], "Developer", "aichat:gateway.sku: 'Developer' is not allowed for a prod stack"),
        ("dev", ["capacity"], 2, "aichat:gateway.capacity: 2 is out of range; allowed: 1 to 1"),
        (
            "dev",
            ["sku"],
            "StandardV2",
            "aichat:gateway.sku: 'StandardV2' is not allowed; allowed values: Developer, Premium",
        ),
        ("dev", ["circuitBreaker", "tripDuration"], "1 minute", "such as PT1M"),
        ("dev", ["tokensPerMinutePerCaller"], 10, "aichat:gateway.tokensPerMinutePerCaller: 10 is out of range"),
        ("dev", ["publisherEmail"], "platform-team", "aichat:gateway.publisherEmail: 'platform-team' is not valid"),
        ("dev", ["tokensPerMinutePerUser"], 999, "aichat:gateway.tokensPerMinutePerUser: 999 is out of range"),
        ("prod", ["tokenQuotaPerUser"], 5000, "aichat:gateway.tokenQuotaPerUser: 5000 is out of range"),
        (
            "dev",
            ["tokenQuotaPeriod"],
            "Minutely",
            "aichat:gateway.tokenQuotaPeriod: 'Minutely' is not allowed; allowed values: Hourly, Daily, Weekly, "
            "Monthly, Yearly",
        ),
    ],
)
def test_bad_gateway_values(values, stack, path, value, expected):
    config = values(stack)
    section = config["gateway"]
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    assert expected in error_for(config, stack)


def test_the_program_stops_before_registering_anything(run_with, stack_values):
    raw = stack_values("dev")
    raw["aichat:openai"]["instances"] = []
    with pytest.raises(ProgramError) as raised:
        run_with("dev", raw)
    assert "no instances" in str(raised.value)
    assert raised.value.resources == []


def test_the_per_user_budget_is_required(values):
    config = values()
    del config["gateway"]["tokensPerMinutePerUser"]
    assert "aichat:gateway.tokensPerMinutePerUser is required but not set" in error_for(config)


def test_a_user_may_not_get_more_than_the_whole_app(values):
    config = values("prod")
    config["gateway"]["tokensPerMinutePerUser"] = config["gateway"]["tokensPerMinutePerCaller"] + 1
    assert "aichat:gateway.tokensPerMinutePerUser: 200001 is more than tokensPerMinutePerCaller (200000)" in error_for(
        config, "prod"
    )


def test_a_quota_below_one_minute_of_budget_is_refused(values):
    config = values("prod")
    config["gateway"]["tokenQuotaPerUser"] = config["gateway"]["tokensPerMinutePerUser"] - 1
    message = error_for(config, "prod")
    assert "aichat:gateway.tokenQuotaPerUser: 19999 is less than tokensPerMinutePerUser (20000)" in message


def test_a_quota_period_without_a_quota_is_refused(values):
    config = values()
    del config["gateway"]["tokenQuotaPerUser"]
    assert "aichat:gateway.tokenQuotaPeriod: is set but tokenQuotaPerUser is not" in error_for(config)


def test_without_a_quota_the_user_has_only_the_per_minute_limit(values):
    config = values()
    del config["gateway"]["tokenQuotaPerUser"], config["gateway"]["tokenQuotaPeriod"]
    gateway = parse_stack_config(config, "dev").gateway
    assert gateway.token_quota_per_user is None and gateway.tokens_per_minute_per_user == 10000
