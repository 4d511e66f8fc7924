def test_both_stacks_export_what_users_need(program):
    for key in ("resourceGroupName", "appUrl", "registryLoginServer", "postgresHost", "keyVaultUri"):
        assert program.outputs.get(key), f"{program.stack}: stack output {key} is missing or empty"
