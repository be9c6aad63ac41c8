"""Commerce error responses: ErrorResourceIds of docs/commerce-api.md ("Errors and ErrorResourceIds"), two envelopes.

Whether a real CSU wraps errors in OData's ``{"error": {...}}`` or answers the flat Commerce object is unknown,
so the envelope is a config switch and the product must parse both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import Problem

RUNTIME = "Microsoft_Dynamics_Commerce_Runtime_"
REQUIRED_VALUE_NOT_FOUND = RUNTIME + "RequiredValueNotFound"
INVALID_EMAIL = RUNTIME + "InvalidEmailAddress"
INVALID_COUNTRY = RUNTIME + "InvalidCountryRegion"
CUSTOMER_NOT_FOUND = RUNTIME + "CustomerNotFound"
OBJECT_NOT_FOUND = RUNTIME + "ObjectNotFound"
DUPLICATE_OBJECT = RUNTIME + "DuplicateObject"
AGGREGATE = RUNTIME + "AggregateValidationError"
INVALID_FORMAT = RUNTIME + "InvalidFormat"
AUTHENTICATION_FAILED = RUNTIME + "AuthenticationFailed"
BAD_REQUEST = "Microsoft_Dynamics_RetailServer_BadRequest"
REQUEST_TOO_LARGE = "Microsoft_Dynamics_RetailServer_RequestTooLarge"
MISSING_ARGUMENT = "Microsoft_Dynamics_RetailServer_MissingRequiredArgument"
INTERNAL = "Microsoft_Dynamics_Internal_Server_Error"
# Not in docs/commerce-api.md: the emulator's own ids for situations a real CSU answers in an unknown way.
TOO_MANY_REQUESTS = "Microsoft_Dynamics_RetailServer_TooManyRequests"
SERVICE_UNAVAILABLE = "Microsoft_Dynamics_RetailServer_ServiceUnavailable"
ROUTE_NOT_FOUND = "Microsoft_Dynamics_RetailServer_ResourceNotFound"

VALIDATION_TYPE = "Microsoft.Dynamics.Commerce.Runtime.DataValidationException"
_TYPE_NAMES = {
    AUTHENTICATION_FAILED: "Microsoft.Dynamics.Commerce.Runtime.UserAuthenticationException",
    CUSTOMER_NOT_FOUND: "Microsoft.Dynamics.Commerce.Runtime.DataValidationException",
    INTERNAL: "Microsoft.Dynamics.Commerce.Runtime.CommerceException",
}

_PROBLEM_IDS = {
    "unknown_property": BAD_REQUEST,
    "bad_request": BAD_REQUEST,
    "invalid_format": INVALID_FORMAT,
    "required": REQUIRED_VALUE_NOT_FOUND,
    "invalid_email": INVALID_EMAIL,
    "invalid_country": INVALID_COUNTRY,
    "object_not_found": OBJECT_NOT_FOUND,
}


@dataclass
class ApiError(Exception):
    status: int
    resource_id: str
    message: str
    member_names: list[str] = field(default_factory=list)
    details: list[ApiError] = field(default_factory=list)  # the parts of an aggregate
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.resource_id}: {self.message}"


def from_problems(problems: list[Problem], echo: str = "") -> ApiError:
    """One problem -> its own error; several -> AggregateValidationError listing each (400 either way).
    ``echo`` (the echo_input_in_errors mode) is appended to every message."""
    parts = [ApiError(400, _PROBLEM_IDS.get(p.kind, BAD_REQUEST), p.message + echo, [p.member]) for p in problems]
    if len(parts) == 1:
        return parts[0]
    members = [m for part in parts for m in part.member_names]
    return ApiError(400, AGGREGATE, f"{len(parts)} validation errors occurred.{echo}", members, parts)


def _flat(err: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "TypeName": _TYPE_NAMES.get(err.resource_id, VALIDATION_TYPE),
        "ErrorResourceId": err.resource_id,
        "LocalizedMessage": err.message,
        "MemberNames": list(err.member_names),
    }
    if err.details:
        body["ValidationResults"] = [_flat(d) for d in err.details]
    return body


def render(err: ApiError, envelope: str) -> dict[str, Any]:
    """The JSON body for ``err`` in the configured envelope ("odata" or "flat")."""
    flat = _flat(err)
    if envelope == "flat":
        return flat
    inner = {k: v for k, v in flat.items() if k != "TypeName"}
    inner["TypeName"] = flat["TypeName"]
    return {"error": {"code": err.resource_id, "message": err.message, "innererror": inner}}
