"""Stack config checked against the platform catalogue on the day of the run (components/platform_checks.py)."""

from __future__ import annotations

import datetime

import pulumi
import pytest

from components.catalog import default_catalog
from components.config import RUN_DATE_VARIABLE, ConfigError, parse_stack_config
from tools.offline import ProgramError

TODAY = datetime.date(2026, 12, 1)


def problems_for(values: dict, stack: str = "dev", today: datetime.date = TODAY) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(values, stack, today=today)
    return raised.value.problems


def chat_model_entry(config: dict):
    chat = config["openai"]["models"]["chat"]
    return default_catalog().model_version(chat["model"], chat["version"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_deployment_of_each_stack_is_open_today_in_every_instance_region(values, stack):
    config = parse_stack_config(values(stack), stack)  # the real run date, as `pulumi up` would use
    catalog, today = default_catalog(), datetime.date.today()
    for model in config.openai.models:
        entry = catalog.model_version(model.model_name, model.model_version)
        assert entry is not None and entry.is_open(model.sku_name, today), model
        for instance in config.openai.instances:
            assert instance.region in entry.offered_in[model.sku_name], (model.model_name, instance.region)


def test_a_run_after_the_chat_model_closes_is_refused_naming_the_key_and_the_date(values):
    config = values()
    last_day = chat_model_entry(config).last_day_open("GlobalStandard")
    problems = problems_for(config, today=last_day + datetime.timedelta(days=1))
    assert any(
        p.startswith("aichat:openai.models.chat.version: gpt-5.4-mini 2026-03-17 takes no new GlobalStandard")
        and str(last_day) in p
        for p in problems
    ), problems


def test_the_last_open_day_is_still_accepted(values):
    config = values()
    last_day = chat_model_entry(config).last_day_open("GlobalStandard")
    assert parse_stack_config(config, "dev", today=last_day).openai.chat_model.model_name == "gpt-5.4-mini"


def test_a_model_closing_within_60_days_is_a_warning_naming_the_date(values):
    config = values()
    last_day = chat_model_entry(config).last_day_open("GlobalStandard")
    warnings = parse_stack_config(config, "dev", today=last_day - datetime.timedelta(days=30)).warnings
    assert any("aichat:openai.models.chat.version" in w and str(last_day) in w and "30 days" in w for w in warnings)


def test_no_warning_while_the_model_is_far_from_closing(values):
    assert parse_stack_config(values(), "dev", today=TODAY).warnings == ()


def test_the_retired_model_the_stacks_used_to_deploy_is_refused(values):
    config = values()
    config["openai"]["models"]["chat"].update(model="gpt-4o-mini", version="2024-07-18")
    [problem] = problems_for(config)
    assert "gpt-4o-mini 2024-07-18 takes no new GlobalStandard deployments" in problem


def test_a_model_a_region_does_not_offer_on_that_sku_names_the_region_and_what_it_offers(values):
    config = values()
    config["openai"]["models"]["embedding"]["sku"] = "Standard"  # not offered in swedencentral
    problems = problems_for(config)
    first = next(p for p in problems if p.startswith("aichat:openai.instances[0].region"))
    assert "swedencentral does not offer text-embedding-3-small 1 on Standard" in first
    assert "offered here on GlobalStandard" in first
    assert "text-embedding-3-large 1" in first  # what the region does offer on Standard today


def test_a_misspelt_region_suggests_the_real_name(values):
    config = values()
    config["location"] = "westeurpoe"
    assert "aichat:location: 'westeurpoe' is not an Azure region; did you mean westeurope?" in problems_for(config)


def test_a_misspelt_instance_region_is_refused_too(values):
    config = values()
    config["openai"]["instances"][1]["region"] = "francecentrl"
    problems = problems_for(config)
    assert any(
        p.startswith("aichat:openai.instances[1].region: 'francecentrl'") and "francecentral" in p for p in problems
    )


def test_an_unlisted_model_is_accepted_only_when_the_config_says_so_and_then_warns(values):
    config = values()
    config["openai"]["models"]["chat"].update(model="gpt-7-mini", version="2027-01-01", skipCatalogCheck=True)
    parsed = parse_stack_config(config, "dev", today=TODAY)
    assert parsed.openai.chat_model.model_name == "gpt-7-mini"
    assert any("skipCatalogCheck: true" in w and "tools.preflight" in w for w in parsed.warnings)


def test_every_problem_of_the_stack_file_is_reported_at_once(values):
    config = values()
    config["network"]["subnets"]["jobs"] = "10.99.0.0/27"  # outside the address space
    config["postgres"]["storageSizeGb"] = 33  # not a size Azure offers
    config["location"] = "swedencentrl"
    problems = problems_for(config)
    assert any(p.startswith("aichat:network.subnets.jobs") for p in problems)
    assert any(p.startswith("aichat:postgres.storageSizeGb") for p in problems)
    assert any(p.startswith("aichat:location") for p in problems)


def test_a_registry_agent_pool_in_a_region_without_them_is_refused(values):
    config = values()
    config["location"] = "francecentral"  # has zones, no registry agent pools
    config["openai"]["instances"][0]["region"] = "swedencentral"
    problems = problems_for(config)
    assert any(p.startswith("aichat:registry.buildAgentPool.enabled: true, but francecentral") for p in problems)


def test_zone_redundancy_in_a_region_without_zones_is_refused(values):
    config = values("prod")
    config["location"] = "northcentralus"  # no availability zones
    problems = problems_for(config, "prod")
    assert any(p.startswith("aichat:location: northcentralus has no availability zones") for p in problems)


def test_the_run_date_can_be_set_for_a_what_if(values, monkeypatch):
    config = values()
    last_day = chat_model_entry(config).last_day_open("GlobalStandard")
    monkeypatch.setenv(RUN_DATE_VARIABLE, str(last_day + datetime.timedelta(days=1)))
    with pytest.raises(ConfigError, match="takes no new GlobalStandard deployments"):
        parse_stack_config(config, "dev")


def test_a_run_date_that_is_not_a_date_is_named(values, monkeypatch):
    monkeypatch.setenv(RUN_DATE_VARIABLE, "tomorrow")
    with pytest.raises(ConfigError, match=f"{RUN_DATE_VARIABLE}: 'tomorrow' is not a date"):
        parse_stack_config(values(), "dev")


def test_under_the_pulumi_cli_config_problems_surface_as_a_run_error_without_a_traceback(stack_values, run_with):
    config = stack_values("dev")
    config["aichat:location"] = "westeurpoe"
    with pytest.raises(ProgramError) as raised:
        run_with("dev", config)
    assert isinstance(raised.value.__cause__, pulumi.RunError)  # the CLI prints a RunError's message only
    assert "did you mean westeurope?" in str(raised.value)
