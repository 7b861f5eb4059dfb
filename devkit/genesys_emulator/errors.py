"""Genesys-shaped API errors.

Every platform API error in Genesys Cloud has the same body (``ErrorBody`` in the SDK); clients log
``contextId`` and branch on ``status``/``code``, so the emulator raises one exception type carrying both.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CODES: dict[int, tuple[str, str]] = {
    400: ("bad.request", "The request could not be understood by the server due to malformed syntax."),
    401: ("bad.credentials", "Invalid login credentials."),
    403: ("not.authorized", "You are not authorized to perform the requested action."),
    404: ("not.found", "The requested resource was not found."),
    405: ("method.not.allowed", "The requested method is not allowed for this resource."),
    408: ("request.timeout", "The request timed out."),
    409: ("general.conflict", "The request conflicts with the current state of the resource."),
    413: ("request.too.large", "The request is over the size limit."),
    415: ("unsupported.media.type", "Unsupported media type."),
    429: ("too.many.requests.retry.after", "Rate limit exceeded the maximum. Retry the request later."),
    500: ("internal.server.error", "The server encountered an unexpected condition."),
    502: ("bad.gateway", "The server received an invalid response from an upstream server."),
    503: ("service.unavailable", "The service is currently unavailable. Retry the request later."),
    504: ("gateway.timeout", "The upstream server did not respond in time."),
}


class ApiError(Exception):
    """An error response: ``status`` plus the ``code``/``message``/``details`` of the Genesys error body."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        limit: dict[str, Any] | None = None,
        entity_id: str | None = None,
    ) -> None:
        default_code, default_message = DEFAULT_CODES.get(status, ("error", "An error occurred."))
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.details = details or []
        self.headers = headers or {}
        self.limit = limit
        self.entity_id = entity_id
        super().__init__(f"{status} {self.code}: {self.message}")

    def body(self, context_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "messageWithParams": self.message,
            "messageParams": {},
            "contextId": context_id,
            "details": self.details,
            "errors": [],
        }
        if self.entity_id is not None:
            body["entityId"] = self.entity_id
        if self.limit is not None:
            body["limit"] = self.limit
        return body


def bad_request(message: str, field: str | None = None, code: str = "bad.request") -> ApiError:
    """400 whose ``details`` names the offending field, as the real API does for invalid bodies."""
    detail: dict[str, Any] = {"errorCode": "invalid.property" if field else code}
    if field:
        detail["fieldName"] = field
    return ApiError(400, message, code, [detail])


def not_found(kind: str, entity_id: str) -> ApiError:
    return ApiError(
        404,
        f"The {kind} was not found: {entity_id}",
        "not.found",
        [{"errorCode": "not.found", "entityId": entity_id, "entityName": kind}],
        entity_id=entity_id,
    )


def version_conflict(entity_id: str) -> ApiError:
    return ApiError(
        409,
        "The version number of the modified resource must match the version number of the current resource.",
        "general.conflict",
        [{"errorCode": "general.conflict", "fieldName": "version", "entityId": entity_id}],
        entity_id=entity_id,
    )
