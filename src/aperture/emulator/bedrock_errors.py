"""Bedrock's error answers and its authentication check, as the emulator renders them.

An error is a JSON body ``{"message": ...}`` whose exception name travels in the
``x-amzn-errortype`` header, decorated the way the service sends it
(``ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/``).

Authentication accepts a Bedrock API key (``Authorization: Bearer <key>``, any key) or a
SigV4 ``Authorization`` header. SigV4 signatures made with the emulator's own key pair
(``EMULATOR_ACCESS_KEY`` / ``EMULATOR_SECRET_KEY``) are verified, by an implementation of
the AWS specification independent of botocore: a gateway signing one path and sending
another fails here as it would against AWS. Other access keys are accepted unverified.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

__all__ = [
    "EMULATOR_ACCESS_KEY",
    "EMULATOR_SECRET_KEY",
    "ERROR_TYPE_SUFFIX",
    "BedrockError",
    "check_authorization",
    "validation",
]

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
EMULATOR_ACCESS_KEY = "AKIAEMULATOREXAMPLE1"
EMULATOR_SECRET_KEY = "emulator/secret/key/EXAMPLEKEY"

SIGV4 = "AWS4-HMAC-SHA256"
INVALID_TOKEN = "The security token included in the request is invalid."
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


class BedrockError(Exception):
    """A failure rendered as Bedrock renders it: status, exception name, message."""

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = dict(headers or {})

    def response_headers(self) -> dict[str, str]:
        return {"x-amzn-errortype": self.name + ERROR_TYPE_SUFFIX, **self.headers}

    def body(self) -> dict[str, str]:
        return {"message": self.message}


def validation(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def check_authorization(
    method: str, raw_path: bytes, query: bytes, headers: Mapping[str, str], body: bytes
) -> None:
    """Accept a bearer key or a SigV4 signature, verifying signatures by the emulator's key.

    ``headers`` must be case-insensitive (Starlette's are).

    Raises:
        BedrockError: 403 ``UnrecognizedClientException`` without usable credentials,
            ``IncompleteSignatureException`` for a malformed SigV4 header and
            ``InvalidSignatureException`` for a wrong signature.
    """
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer ") and authorization[7:].strip():
        return
    if not authorization.startswith(f"{SIGV4} Credential="):
        raise BedrockError(403, "UnrecognizedClientException", INVALID_TOKEN)
    fields = _sigv4_fields(authorization)
    scope = fields["Credential"].split("/")
    stamp = headers.get("x-amz-date", "")
    signed = fields["SignedHeaders"].split(";")
    if len(scope) != 5 or scope[4] != "aws4_request" or not stamp or "host" not in signed:
        raise BedrockError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires a Credential scope, SignedHeaders with host and an "
            "X-Amz-Date header.",
        )
    access_key, day, region, service, _ = scope
    if access_key != EMULATOR_ACCESS_KEY:
        return
    if service != "bedrock" or day != stamp[:8]:
        raise BedrockError(403, "InvalidSignatureException", BAD_SIGNATURE)
    canonical = "\n".join(
        [
            method,
            _canonical_path(raw_path.decode("latin-1")),
            _canonical_query(query.decode("latin-1")),
            "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed),
            ";".join(signed),
            headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            SIGV4,
            stamp,
            f"{day}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{EMULATOR_SECRET_KEY}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise BedrockError(403, "InvalidSignatureException", BAD_SIGNATURE)


def _sigv4_fields(authorization: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in authorization[len(SIGV4) :].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    if not all(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
        raise BedrockError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        )
    return fields


def _canonical_path(raw_path: str) -> str:
    """Every segment of the path as received, URI-encoded once more (services other than S3
    sign the doubly encoded path)."""
    return "/".join(quote(segment, safe="-_.~") for segment in raw_path.split("/")) or "/"


def _canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
