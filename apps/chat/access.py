"""Who is calling, and which documents they may read.

Identity comes from App Service authentication's headers only when AUTH_MODE=app_service: the
platform strips and sets those headers itself. In any other mode anyone could forge them, so
they are ignored and the caller is anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .settings import Settings

PRINCIPAL_ID_HEADER = "x-ms-client-principal-id"
PRINCIPAL_HEADER = "x-ms-client-principal"
GROUP_CLAIM_TYPES = {"groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"}


class AuthenticationError(Exception):
    """The caller must sign in, or the identity headers are unusable (HTTP 401)."""


@dataclass(frozen=True)
class Caller:
    user_id: str | None = None
    group_ids: tuple[str, ...] = ()

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None


ANONYMOUS = Caller()


@dataclass(frozen=True)
class AccessFilter:
    """Which documents a transaction may read. The database enforces it: row-level security policies on
    documents, chunks and chunk_terms (migration 0005) read these values from the transaction's settings,
    which Database.transaction and Database.fetch_all make from `settings()`."""

    see_all: bool
    unrestricted_visible: bool
    user_ids: list[str]
    group_ids: list[str]
    # Whether the transaction may write documents and chunks: the system's own work only, never a caller's,
    # even one who sees all documents (ENFORCE_ACCESS_CONTROL=false).
    writes: bool = False

    def settings(self) -> dict[str, str]:
        """The transaction settings the row-level security policies read (aichat.*)."""
        return {
            "aichat.see_all": _on_off(self.see_all),
            "aichat.writes": _on_off(self.writes),
            "aichat.unrestricted_visible": _on_off(self.unrestricted_visible),
            "aichat.user_ids": _array_literal(self.user_ids),
            "aichat.group_ids": _array_literal(self.group_ids),
        }


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _array_literal(values: list[str]) -> str:
    """A PostgreSQL text[] literal, each element quoted, so that any id reads back as itself."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


# The system's own work (ingestion, administration, the health check): every document, and writes.
SYSTEM = AccessFilter(see_all=True, unrestricted_visible=True, user_ids=[], group_ids=[], writes=True)


def caller_from_headers(headers: Mapping[str, str], settings: Settings) -> Caller:
    if settings.auth_mode != "app_service":
        return ANONYMOUS
    user_id = (headers.get(PRINCIPAL_ID_HEADER) or "").strip()
    if not user_id:
        raise AuthenticationError("sign-in required: no App Service authentication identity on the request")
    return Caller(user_id=user_id, group_ids=_groups_from_principal(headers.get(PRINCIPAL_HEADER)))


def _groups_from_principal(encoded: str | None) -> tuple[str, ...]:
    if not encoded:
        return ()
    try:
        principal = json.loads(base64.b64decode(encoded, validate=False))
        claims = principal.get("claims") or []
        return tuple(
            str(claim["val"]) for claim in claims if claim.get("typ") in GROUP_CLAIM_TYPES and claim.get("val")
        )
    except (binascii.Error, ValueError, AttributeError, TypeError, KeyError, RecursionError) as error:
        raise AuthenticationError(f"malformed {PRINCIPAL_HEADER} header: {error}") from error


def access_filter(
    caller: Caller, settings: Settings, use_oid_filter: bool = False, use_groups_filter: bool = False
) -> AccessFilter:
    """The documents a caller may read.

    With ENFORCE_ACCESS_CONTROL on (the default) both filters always apply; a request's overrides
    can switch filters on but never off, so a client cannot widen its own access.
    """
    by_user = settings.enforce_access_control or use_oid_filter
    by_group = settings.enforce_access_control or use_groups_filter
    return AccessFilter(
        see_all=not (by_user or by_group),
        unrestricted_visible=settings.unrestricted_documents_visible,
        user_ids=[caller.user_id] if by_user and caller.user_id else [],
        group_ids=list(caller.group_ids) if by_group else [],
    )
