"""Request signing, as the eas-prediction SDK signs requests with a token.

With a token set on the client, every request carries

    Content-MD5:   hex MD5 of the body
    Date:          the time of signing, as text
    Content-Type:  the body's type
    Authorization: EAS <base64 of HMAC-SHA1(token, string-to-sign)>

where the string to sign is the verb, the Content-MD5, the Content-Type, the
Date and the resource path (`/api/predict/<service>`), one per line. The SDK
also has a mode (a custom URL) in which it sends the bare token as the
Authorization header; the server accepts that too.

NOTE: the SDK writes its local time with a `GMT` suffix, so the Date cannot
be compared with the server's clock; a signature is checked, not its age.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping

from recship.errors import ServingError

SCHEME = "EAS "


class AuthError(ServingError):
    """A request is unsigned or badly signed (HTTP 401)."""

    status = 401


def sign_request(
    token: str, *, path: str, body: bytes, content_type: str, date: str
) -> dict[str, str]:
    """The headers that sign a POST of `body` to `path` with `token`.

    Args:
        token: the service token.
        path: the resource path, e.g. `/api/predict/recship`.
        body: the request body.
        content_type: its Content-Type.
        date: the Date header's text.

    Returns:
        Content-MD5, Date, Content-Type and Authorization headers.
    """
    content_md5 = hashlib.md5(body).hexdigest()
    signature = _signature(token, "POST", content_md5, content_type, date, path)
    return {
        "Content-MD5": content_md5,
        "Date": date,
        "Content-Type": content_type,
        "Authorization": SCHEME + signature,
    }


class Authenticator:
    """Checks the signature of requests against one service token.

    Args:
        token: the service token; requests signed with another are refused.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")
        self._token_text = token

    def check(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        """Accepts a correctly signed request, or raises.

        Args:
            method: the HTTP verb.
            path: the request path, the signed resource.
            headers: request headers (case-insensitive mapping).
            body: the request body as received.

        Raises:
            AuthError: (401) no Authorization header, a body that does not
                match its Content-MD5, or a signature made with another token.
        """
        authorization = headers.get("authorization", "")
        if not authorization:
            raise AuthError(
                "missing Authorization header; this service needs requests "
                "signed with its token (the eas-prediction SDK's set_token)"
            )
        if hmac.compare_digest(authorization.encode(), self._token):
            return
        if not authorization.startswith(SCHEME):
            raise AuthError(
                "Authorization header is not 'EAS <signature>'; sign the request "
                "with the service token"
            )

        content_md5 = headers.get("content-md5", "")
        if not hmac.compare_digest(content_md5, hashlib.md5(body).hexdigest()):
            raise AuthError(
                "Content-MD5 header does not match the body; sign the body that is sent"
            )
        expected = _signature(
            self._token_text,
            method,
            content_md5,
            headers.get("content-type", ""),
            headers.get("date", ""),
            path,
        )
        if not hmac.compare_digest(authorization[len(SCHEME) :].strip(), expected):
            raise AuthError(
                f"signature does not match for {method} {path}; check the service token"
            )


def _signature(
    token: str, verb: str, content_md5: str, content_type: str, date: str, path: str
) -> str:
    """Base64 of the HMAC-SHA1 of the string to sign."""
    # The SDK strips the joined text, so a signature over an empty last
    # field still matches.
    text = "\n".join((verb, content_md5, content_type, date, path)).strip()
    digest = hmac.new(token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")
