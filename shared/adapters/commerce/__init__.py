"""The Commerce Scale Unit client: the only code that talks to Dynamics 365 Commerce."""

from shared.core.commerce_errors import (
    STATUS_CLASSES,
    CommerceAuthError,
    CommerceConnectionError,
    CommerceError,
    CommerceNotFoundError,
    CommercePermanentError,
    CommerceServerError,
    CommerceThrottledError,
    CommerceTimeoutError,
    CommerceTransientError,
    CommerceValidationError,
    error_from_response,
    mask_text,
    parse_error_body,
    parse_retry_after,
)

from .auth import CachedTokenProvider, StaticTokenProvider, TokenProvider, build_token_provider
from .client import CallRecord, CommerceClient

__all__ = [
    "STATUS_CLASSES",
    "CachedTokenProvider",
    "CallRecord",
    "CommerceAuthError",
    "CommerceClient",
    "CommerceConnectionError",
    "CommerceError",
    "CommerceNotFoundError",
    "CommercePermanentError",
    "CommerceServerError",
    "CommerceThrottledError",
    "CommerceTimeoutError",
    "CommerceTransientError",
    "CommerceValidationError",
    "StaticTokenProvider",
    "TokenProvider",
    "build_token_provider",
    "error_from_response",
    "mask_text",
    "parse_error_body",
    "parse_retry_after",
]
