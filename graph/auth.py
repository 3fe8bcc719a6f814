"""Who may call the served graphs: with ``SIMCODER_API_TOKEN`` set, only requests that carry it.

``langgraph.json`` names :data:`auth`.  The token comes in ``Authorization: Bearer <token>`` or in
``x-api-key``; it is compared in constant time and never logged.  Without a token the server answers
everyone who can reach it, so it must then listen on 127.0.0.1 only (the README's command).  Studio's
own sign-in is off (``disable_studio_auth``): a request cannot skip this check by claiming to be Studio.
"""

from __future__ import annotations

import hmac
import os

from langgraph_sdk import Auth

TOKEN_ENV = "SIMCODER_API_TOKEN"

auth = Auth()


def token_matches(expected: str, authorization: str | None, api_key: str | None) -> bool:
    """True when the ``Authorization`` header (``Bearer <token>``) or the ``x-api-key`` header holds ``expected``."""
    offered: list[str] = []
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            offered.append(value.strip())
    if api_key:
        offered.append(api_key.strip())
    return any(hmac.compare_digest(value.encode(), expected.encode()) for value in offered)


@auth.authenticate
async def authenticate(authorization: str | None, headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    """Accept a request when no token is configured, or when it carries the operator's token."""
    expected = os.environ.get(TOKEN_ENV, "").strip()
    if not expected:
        return {"identity": "loopback"}
    api_key = headers.get(b"x-api-key", b"").decode("latin-1")
    if not token_matches(expected, authorization, api_key or None):
        raise Auth.exceptions.HTTPException(status_code=401, detail=f"this server needs its token ({TOKEN_ENV}) in "
                                                                    "'Authorization: Bearer ...' or 'x-api-key'")
    return {"identity": "token"}
