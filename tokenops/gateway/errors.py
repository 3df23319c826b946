"""Errors the gateway itself raises, in each provider's own JSON shape and status.

The one place where gateway failures become HTTP responses, so SDKs raise the exception class
they would raise against the real provider (401 -> AuthenticationError, 429 -> RateLimitError).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from tokenops.gateway.upstream import Flavour

# Anthropic error types by status (https://docs.anthropic.com/en/api/errors)
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    504: "api_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    504: "timeout",
}


class GatewayError(Exception):
    """A request the gateway refuses or cannot complete, with the status to answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.detail = detail
        self.status = status
        self.message = message
        self.code = code
        self.error_type = error_type

    def response(self, flavour: Flavour, headers: dict[str, str] | None = None) -> Response:
        """The error as the provider would have sent it."""
        return error_response(
            flavour,
            self.status,
            self.message,
            code=self.code,
            error_type=self.error_type,
            headers=headers,
            detail=self.detail,
        )


def error_response(
    flavour: Flavour,
    status: int,
    message: str,
    *,
    code: str | None = None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
    detail: Mapping[str, object] | None = None,
) -> Response:
    """Build an error response in `flavour`'s format."""
    body = error_body(flavour, status, message, code=code, error_type=error_type, detail=detail)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_body(
    flavour: Flavour,
    status: int,
    message: str,
    *,
    code: str | None = None,
    error_type: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> bytes:
    """The JSON error body the provider would send (shared with the SDK's refusals).

    `detail` (a guardrail's limit, spend and reset time) goes under `error.tokenops`: both SDKs keep
    unknown fields of an error object, so callers can read it without parsing the message.
    """
    error: dict[str, object]
    if flavour == "anthropic":
        error = {"type": error_type or _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}
        body: dict[str, object] = {"type": "error", "error": error}
    else:
        error = {
            "message": message,
            "type": error_type or _OPENAI_TYPES.get(status, "server_error"),
            "param": None,
            "code": code,
        }
        body = {"error": error}
    if detail is not None:
        error["tokenops"] = dict(detail)
    return orjson.dumps(body)


# SDKs retry 429s by default; a guardrail refusal will not change on retry (both SDKs honour this)
NO_RETRY = {"x-should-retry": "false"}


def stream_error(flavour: Flavour, message: str) -> bytes:
    """An error event inside an already-started SSE stream (both SDKs raise on it)."""
    if flavour == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "server_error", "code": None}}) + b"\n\n"
