import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from shared.core.commerce_errors import (
    CommerceAuthError,
    CommerceConnectionError,
    CommerceNotFoundError,
    CommercePermanentError,
    CommerceServerError,
    CommerceThrottledError,
    CommerceTimeoutError,
    CommerceValidationError,
)
from shared.core.failures import Disposition, MessageFormatError, classify_failure


def _http_error(status):
    e = HttpResponseError(message="boom")
    e.status_code = status
    return e


@pytest.mark.parametrize(
    "error, disposition, reason",
    [
        (
            CommerceThrottledError("slow down", operation="create", status=429, retry_after=3.0),
            Disposition.RETRY,
            "commerce_throttled",
        ),
        (CommerceServerError("x", operation="update", status=503), Disposition.RETRY, "commerce_server"),
        (CommerceTimeoutError("x", operation="search"), Disposition.RETRY, "commerce_timeout"),
        (CommerceConnectionError("x", operation="get"), Disposition.RETRY, "commerce_connection"),
        (CommerceAuthError("x", operation="search", status=401), Disposition.RETRY, "commerce_auth"),
        (CommerceNotFoundError("x", operation="get", status=404), Disposition.RETRY, "commerce_not_found"),
        (
            CommerceValidationError(
                "bad",
                operation="create",
                status=400,
                error_resource_id="Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress",
            ),
            Disposition.DEAD_LETTER,
            "commerce_rejected",
        ),
        (CommercePermanentError("x", operation="create", status=501), Disposition.DEAD_LETTER, "commerce_rejected"),
        (MessageFormatError("not json"), Disposition.DEAD_LETTER, "unreadable_message"),
        (ServiceRequestError("connection refused"), Disposition.RETRY, "storage_unavailable"),
        (ClientAuthenticationError("no"), Disposition.RETRY, "storage_auth"),
        (_http_error(503), Disposition.RETRY, "storage_unavailable"),
        (ResourceNotFoundError("table gone"), Disposition.DEAD_LETTER, "storage_rejected"),
        (ZeroDivisionError("bug"), Disposition.RETRY, "unexpected_error"),
    ],
)
def test_each_failure_has_one_disposition_and_reason(error, disposition, reason):
    if isinstance(error, ResourceNotFoundError):
        error.status_code = 404
    failure = classify_failure(error)
    assert failure.disposition is disposition
    assert failure.reason == reason


def test_throttling_keeps_retry_after_and_auth_is_flagged():
    assert (
        classify_failure(CommerceThrottledError("x", operation="create", status=429, retry_after=7.0)).retry_after
        == 7.0
    )
    assert classify_failure(CommerceAuthError("x", operation="search", status=403)).auth is True
    assert classify_failure(CommerceServerError("x", operation="search", status=500)).auth is False


def test_messages_carrying_personal_data_are_masked():
    failure = classify_failure(ValueError("could not use ann.o'neil@example.com or +1 206 555 0100"))
    assert "example.com" not in failure.message
    assert "555" not in failure.message


def test_a_bare_404_on_search_or_create_points_at_the_endpoint_not_the_customer():
    assert (
        classify_failure(CommerceNotFoundError("x", operation="search", status=404)).reason
        == "commerce_endpoint_not_found"
    )
    assert (
        classify_failure(CommerceNotFoundError("x", operation="create", status=404)).reason
        == "commerce_endpoint_not_found"
    )
    assert (
        classify_failure(
            CommerceNotFoundError(
                "x",
                operation="get",
                status=404,
                error_resource_id="Microsoft_Dynamics_Commerce_Runtime_CustomerNotFound",
            )
        ).reason
        == "commerce_not_found"
    )
    assert classify_failure(CommerceNotFoundError("x", operation="update", status=404)).reason == "commerce_not_found"


def test_a_request_error_counts_as_refused_only_if_the_request_never_left():
    from shared.core.commerce_errors import CommercePermanentError

    never_left = CommercePermanentError("request failed: InvalidURL", operation="update")
    never_left.sent = False
    after_response = CommercePermanentError("request failed: ContentDecodingError", operation="update")
    after_response.sent = True
    assert classify_failure(never_left).may_have_committed is False
    assert classify_failure(after_response).may_have_committed is True


def test_encoded_personal_data_in_a_commerce_message_is_masked_and_the_code_kept():
    rid = "Microsoft_Dynamics_Commerce_Runtime_RequiredValueNotFound"
    error = CommerceValidationError(
        "TaxGroup is required for zo%C3%AB%40example.com, tel %2B12065550142",
        operation="create",
        status=400,
        error_resource_id=rid,
        member_names=["TaxGroup"],
    )
    failure = classify_failure(error)
    assert "%40" not in failure.message and "example.com" not in failure.message
    assert "2065550142" not in failure.message
    assert failure.error_resource_id == rid and failure.status == 400
    assert rid in failure.message and "TaxGroup" in failure.message
