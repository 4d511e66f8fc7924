"""Entra ID access tokens from azure-identity, cached and refreshed before they expire.

Used for the PostgreSQL password and the bearer token sent to Azure OpenAI / API Management.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Ask for a new token this long before the current one expires, so a connection or request
# started just before expiry still authenticates.
TOKEN_REFRESH_MARGIN_SECONDS = 300


class TokenCredential(Protocol):
    """The part of azure-identity's credential interface used here."""

    def get_token(self, *scopes: str) -> Any: ...


def default_credential() -> TokenCredential:
    """Managed identity in Azure (AZURE_CLIENT_ID picks a user-assigned one), developer sign-in locally."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


class CachedTokenProvider:
    """Returns a valid access token for one scope, asking the credential only when needed."""

    def __init__(self, credential: TokenCredential, scope: str, clock=time.time):
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()

    def _is_fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_on - TOKEN_REFRESH_MARGIN_SECONDS

    async def token(self) -> str:
        async with self._lock:
            if not self._is_fresh():
                # azure-identity's synchronous credentials may do network I/O: keep it off the event loop.
                access_token = await asyncio.to_thread(self._credential.get_token, self._scope)
                self._token = access_token.token
                self._expires_on = float(access_token.expires_on)
                log.info("obtained a token for %s valid until %s", self._scope, time.ctime(self._expires_on))
            assert self._token is not None
            return self._token
