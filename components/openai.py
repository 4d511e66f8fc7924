"""Azure OpenAI accounts: one per configured instance, keyless and reachable only through the VNet.

Each account gets the same model deployments (the gateway's pool sends any request to any member,
so deployment names must match everywhere). Accounts may live in other regions than the VNet:
their private endpoints sit in the VNet's region, which Azure allows (cross-region private link).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.cognitiveservices as cognitiveservices

from components.config import OpenAiConfig, OpenAiInstanceConfig
from components.context import StackContext
from components.private_endpoint import OPENAI, PrivateAccess, connect_privately


@dataclass
class OpenAiAccountsArgs:
    context: StackContext
    settings: OpenAiConfig  # the accounts (instances) and the models each of them deploys
    access: PrivateAccess  # resource group, endpoint subnet, DNS zones (must hold OPENAI's), workspace
    production: bool  # model versions change only by a reviewed config change (model_upgrade_option)


@dataclass(frozen=True)
class OpenAiAccount:
    """What the gateway needs to know about one account."""

    instance: OpenAiInstanceConfig  # name, region, priority and weight from config
    id: pulumi.Output[str]
    endpoint: pulumi.Output[str]  # https://<subdomain>.openai.azure.com/


class OpenAiAccounts(pulumi.ComponentResource):
    """`accounts` in config order; `endpoints` is the stack output (name, region, endpoint)."""

    accounts: list[OpenAiAccount]
    endpoints: pulumi.Output[list[dict[str, str]]]

    def __init__(self, name: str, args: OpenAiAccountsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:ai:OpenAiAccounts", name, None, opts)
        self.accounts = [self._account(name, args, instance) for instance in args.settings.instances]
        self.endpoints = pulumi.Output.all(
            *[
                pulumi.Output.from_input(account.endpoint).apply(
                    lambda endpoint, i=account.instance: {"name": i.name, "region": i.region, "endpoint": endpoint}
                )
                for account in self.accounts
            ]
        )
        self.register_outputs({"endpoints": self.endpoints})

    def _account(self, name: str, args: OpenAiAccountsArgs, instance: OpenAiInstanceConfig) -> OpenAiAccount:
        context = args.context
        child = f"{name}-{instance.name}"
        # The custom subdomain is a global DNS name (and what Entra tokens are checked against).
        account_name = context.unique_name(f"oai-{instance.name}", max_length=64)
        account = cognitiveservices.Account(
            child,
            account_name=account_name,
            resource_group_name=args.access.resource_group_name,
            location=instance.region,
            kind="OpenAI",
            sku=cognitiveservices.SkuArgs(name="S0"),
            properties=cognitiveservices.AccountPropertiesArgs(
                custom_sub_domain_name=account_name,
                disable_local_auth=True,  # Entra tokens only: no API keys exist to leak
                public_network_access="Disabled",
                # No trusted-service exception either: API Management reaches the account through its private
                # endpoint, and nothing else should (the API's default bypass lets Azure services through).
                network_acls=cognitiveservices.NetworkRuleSetArgs(default_action="Deny", bypass="None"),
            ),
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        deployments = self._deployments(child, args, instance, account)
        # The endpoint waits for the deployments: while they update the account, Azure refuses a new private
        # endpoint (AccountProvisioningStateInvalid, state Accepted; Azure/bicep-registry-modules#5957, fixed
        # the same way in #7205).
        connect_privately(
            child,
            target=OPENAI,
            service=account,
            access=args.access,
            location=context.location,  # the VNet's region, whatever the account's region
            tags=context.tags,
            parent=self,
            after=deployments,
        )
        return OpenAiAccount(instance=instance, id=account.id, endpoint=account.properties.endpoint)

    def _deployments(
        self, child: str, args: OpenAiAccountsArgs, instance: OpenAiInstanceConfig, account: cognitiveservices.Account
    ) -> list[cognitiveservices.Deployment]:
        """Chat and embedding deployments, one after another: Azure rejects parallel changes to one account."""
        deployments: list[cognitiveservices.Deployment] = []
        previous: cognitiveservices.Deployment | None = None
        for model in args.settings.models:
            previous = cognitiveservices.Deployment(
                f"{child}-{model.role}",
                account_name=account.name,
                resource_group_name=args.access.resource_group_name,
                deployment_name=model.deployment_name,
                sku=cognitiveservices.SkuArgs(name=model.sku_name, capacity=instance.capacity_for(model)),
                properties=cognitiveservices.DeploymentPropertiesArgs(
                    model=cognitiveservices.DeploymentModelArgs(
                        format="OpenAI", name=model.model_name, version=model.model_version
                    ),
                    version_upgrade_option=model_upgrade_option(args.production),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous] if previous else None),
            )
            deployments.append(previous)
        return deployments


def model_upgrade_option(production: bool) -> str:
    """prod never changes model version on its own: a new version is a reviewed config change, and the
    config check warns 60 days before the configured one closes. dev follows Azure's upgrade when the
    configured version expires, so an idle dev stack keeps working."""
    return "NoAutoUpgrade" if production else "OnceCurrentVersionExpired"
