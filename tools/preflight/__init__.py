"""The live pre-deployment check: can this subscription take this stack, today?

    python -m tools.preflight STACK [--subscription ID] [--stack-outputs FILE] [--preview-identity]
    python -m tools.preflight STACK --refresh-catalog [--catalog-dir DIR]

Validates Pulumi.STACK.yaml (as `pulumi up` would; problems are failing rows and nothing is read from
Azure), then reads the deployer's subscription through Azure Resource Manager, signed in with
azure-identity's DefaultAzureCredential (`az login`, or the azure/login step in CI):

1. the resource providers the program deploys to are registered;
2. every OpenAI instance's region offers each configured model version on its SKU, and it is not retired;
3. the region's quota has room for the capacity every instance there asks of the model;
4. no soft-deleted Key Vault, OpenAI account or API Management service holds a name the stack uses now
   (names from --stack-outputs FILE, the JSON of `pulumi stack output --json`, else from the Pulumi CLI
   when it is installed, else the stack is taken as new);
5. the deployer may create role assignments on the stack's resource group (or the subscription, before
   the group exists); with --preview-identity (a Reader identity that only runs `pulumi preview`) lacking
   it is a warning.

It only reads: the management clients' automatic provider registration is left out of their pipeline.
The result is one table (check | subject | verdict | detail | remedy) on standard output, also appended
as Markdown to $GITHUB_STEP_SUMMARY when that is set.

--refresh-catalog instead rewrites the `offeredIn` lists of catalog/openai-models.yaml for the stack's
regions from the live models list, keeping everything else; review the diff before committing it.

Subscription: --subscription, else $AZURE_SUBSCRIPTION_ID, else $ARM_SUBSCRIPTION_ID.
Environment: AICHAT_ARM_ENDPOINT overrides the Azure Resource Manager endpoint (default
https://management.azure.com), e.g. a local stand-in in tests; plain http is accepted only for
127.0.0.1 or localhost. AICHAT_RUN_DATE checks as of another day (components/config.py).

Exit status: 0 nothing blocks a deployment (warnings may be listed), 1 at least one FAIL row,
2 usage error (unknown stack, no subscription, an endpoint refused).
"""
