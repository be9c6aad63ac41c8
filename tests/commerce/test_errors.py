"""Error parsing and classification: both envelopes, junk, Retry-After, the status table, masking."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from requests.structures import CaseInsensitiveDict

from shared.core.commerce_errors import (
    RUNTIME_PREFIX,
    CommerceAuthError,
    CommerceError,
    CommerceNotFoundError,
    CommercePermanentError,
    CommerceServerError,
    CommerceThrottledError,
    CommerceTransientError,
    CommerceValidationError,
    error_from_response,
    mask_text,
    parse_error_body,
    parse_retry_after,
)


class FakeResponse:
    def __init__(self, status: int, body: bytes | str | dict | None = None, headers: dict | None = None):
        self.status_code = status
        if isinstance(body, dict):
            body = json.dumps(body)
        self.content = body.encode() if isinstance(body, str) else (body or b"")
        self.headers = CaseInsensitiveDict(headers or {})


def odata(rid: str, message: str, members: list[str] | None = None) -> dict:
    return {
        "error": {
            "code": rid,
            "message": message,
            "innererror": {"ErrorResourceId": rid, "LocalizedMessage": message, "MemberNames": members or []},
        }
    }


def flat(rid: str, message: str, members: list[str] | None = None) -> dict:
    return {
        "TypeName": "Microsoft.Dynamics.Commerce.Runtime.DataValidationException",
        "ErrorResourceId": rid,
        "LocalizedMessage": message,
        "MemberNames": members or [],
    }


# --- parse_error_body ------------------------------------------------------------------------------
@pytest.mark.parametrize("envelope", [odata, flat])
def test_parse_both_envelopes(envelope):
    rid = RUNTIME_PREFIX + "InvalidEmailAddress"
    body = json.dumps(envelope(rid, "The email is not valid.", ["Email"]))
    assert parse_error_body(body) == (rid, "The email is not valid.", ["Email"])
    assert parse_error_body(body.encode()) == (rid, "The email is not valid.", ["Email"])


def test_parse_odata_without_innererror_and_with_details():
    body = {
        "error": {
            "code": "BadRequest",
            "message": {"lang": "en-US", "value": "Bad property"},
            "details": [{"code": "x", "message": "m", "target": "Foo"}],
        }
    }
    assert parse_error_body(json.dumps(body)) == ("BadRequest", "Bad property", ["Foo"])


def test_parse_flat_aggregate_collects_member_names():
    body = {
        "ErrorResourceId": RUNTIME_PREFIX + "AggregateValidationError",
        "LocalizedMessage": "Several problems",
        "ValidationResults": [
            {"ErrorResourceId": RUNTIME_PREFIX + "InvalidEmailAddress", "MemberNames": ["Email"]},
            {"ErrorResourceId": RUNTIME_PREFIX + "InvalidCountryRegion", "MemberNames": ["ThreeLetterISORegionName"]},
        ],
    }
    rid, msg, names = parse_error_body(json.dumps(body))
    assert rid == RUNTIME_PREFIX + "AggregateValidationError"
    assert names == ["Email", "ThreeLetterISORegionName"]


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        "",
        "<html><body>502 Bad Gateway</body></html>",
        "null",
        "[1,2]",
        '"a string"',
        "{not json",
        b"\xff\xfe\x00garbage",
        None,
    ],
)
def test_parse_junk(junk):
    assert parse_error_body(junk) == (None, None, [])


def test_parse_utf8_bom():
    body = "\ufeff" + json.dumps(flat("X", "m"))
    assert parse_error_body(body.encode("utf-8")) == ("X", "m", [])


# --- parse_retry_after -----------------------------------------------------------------------------
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("0", 0.0),
        ("1", 1.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        (format_datetime(datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        ("Thu, 26 Nov 2026 12:02:00 GMT", 120.0),
        ("Thu, 26 Nov 2026 11:59:00 GMT", 0.0),  # already past: retry now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("Thu, 99 Nov 2026 12:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected
    assert parse_retry_after(value, NOW.timestamp()) == expected


def test_parse_retry_after_defaults_to_current_time():
    soon = datetime.now(UTC).timestamp() + 60
    value = format_datetime(datetime.fromtimestamp(soon, UTC), usegmt=True)
    assert 55 <= parse_retry_after(value) <= 60


# --- classification --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status,expected",
    [
        (400, CommercePermanentError),
        (401, CommerceAuthError),
        (403, CommerceAuthError),
        (404, CommerceNotFoundError),
        (405, CommercePermanentError),
        (409, CommercePermanentError),
        (413, CommercePermanentError),
        (408, CommerceServerError),
        (423, CommerceServerError),
        (429, CommerceThrottledError),
        (500, CommerceServerError),
        (501, CommercePermanentError),
        (502, CommerceServerError),
        (503, CommerceServerError),
        (504, CommerceServerError),
        (507, CommerceServerError),
        (302, CommercePermanentError),
    ],
)
def test_status_table(status, expected):
    error = error_from_response("get", FakeResponse(status, "<html>oops</html>"))
    assert type(error) is expected
    assert error.status == status and error.operation == "get"


@pytest.mark.parametrize("envelope", [odata, flat])
@pytest.mark.parametrize(
    "rid,status,expected",
    [
        ("InvalidEmailAddress", 400, CommerceValidationError),
        ("RequiredValueNotFound", 400, CommerceValidationError),
        ("AggregateValidationError", 400, CommerceValidationError),
        ("InvalidCountryRegion", 400, CommerceValidationError),
        ("InvalidFormat", 400, CommerceValidationError),
        ("InvalidSomethingNew", 400, CommerceValidationError),
        ("CustomerNotFound", 404, CommerceNotFoundError),
        ("CustomerNotFound", 400, CommerceNotFoundError),  # not-found status unknown: the id decides
        ("ObjectNotFound", 400, CommerceNotFoundError),
        ("AuthenticationFailed", 400, CommerceAuthError),
        ("AuthenticationFailed", 401, CommerceAuthError),
        ("DuplicateObject", 400, CommercePermanentError),
        ("InvalidEmailAddress", 409, CommercePermanentError),  # validation only on 400
        ("CustomerNotFound", 503, CommerceServerError),  # a transient status is never overridden
        ("CustomerNotFound", 429, CommerceThrottledError),
    ],
)
def test_error_resource_id_refines_4xx(envelope, rid, status, expected):
    error = error_from_response("update", FakeResponse(status, envelope(RUNTIME_PREFIX + rid, "msg", ["Email"])))
    assert type(error) is expected
    assert error.error_resource_id == RUNTIME_PREFIX + rid
    assert error.member_names == ["Email"]


def test_retail_server_bad_request_is_permanent_not_validation():
    error = error_from_response(
        "create", FakeResponse(400, odata("Microsoft_Dynamics_RetailServer_BadRequest", "Unknown property Foo"))
    )
    assert type(error) is CommercePermanentError


def test_hierarchy():
    assert issubclass(CommerceValidationError, CommercePermanentError)
    assert issubclass(CommerceThrottledError, CommerceTransientError)
    assert issubclass(CommerceServerError, CommerceTransientError)
    assert not issubclass(CommerceAuthError, CommerceTransientError)
    assert all(issubclass(c, CommerceError) for c in (CommerceAuthError, CommerceNotFoundError))


@pytest.mark.parametrize("status,cls", [(429, CommerceThrottledError), (503, CommerceServerError)])
def test_retry_after_read_from_header(status, cls):
    error = error_from_response("search", FakeResponse(status, b"", {"retry-after": "3"}))
    assert type(error) is cls and error.retry_after == 3.0
    date = error_from_response(
        "search", FakeResponse(status, b"", {"Retry-After": "Thu, 26 Nov 2026 12:00:10 GMT"}), now=NOW.timestamp()
    )
    assert date.retry_after == 10.0
    assert error_from_response("search", FakeResponse(status, b"")).retry_after is None


# --- masking ---------------------------------------------------------------------------------------
JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhcGk6Ly9yZXRhaWwifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize("envelope", [odata, flat])
def test_str_never_contains_email_phone_or_token(envelope):
    message = (
        f"Customer with email Ann.O'Brien+vip@Example.co.uk and phone +1 (613) 555-1111 / 0045 12345678 "
        f"is invalid; token {JWT}; secret sk-local-value"
    )
    body = envelope(RUNTIME_PREFIX + "InvalidEmailAddress", message, ["Email"])
    error = error_from_response("create", FakeResponse(400, body), secrets=["sk-local-value"])
    text = f"{error} {error!r} {error.message} {error.args}"
    for leaked in ("Example.co.uk", "O'Brien", "@", "613", "555-1111", "12345678", "eyJ", "sk-local-value"):
        assert leaked not in text, leaked
    assert "InvalidEmailAddress" in str(error) and "create" in str(error) and "400" in str(error)


def test_mask_keeps_useful_text():
    text = "Microsoft_Dynamics_Commerce_Runtime_CustomerNotFound: customer 004075 not found on 2026-11-26"
    masked = mask_text(text)
    assert "Microsoft_Dynamics_Commerce_Runtime_CustomerNotFound" in masked and "004075" in masked


def test_error_constructed_directly_is_masked():
    error = CommerceError("bad ann@x.com", operation="search", status=400)
    assert "ann@x.com" not in str(error) and "<email>" in str(error)


def test_errors_survive_copy_and_pickle():
    import copy
    import pickle

    from shared.core.commerce_errors import CommerceConnectionError

    error = CommerceThrottledError("slow down", operation="search", status=429, retry_after=2.0)
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is CommerceThrottledError and str(clone) == str(error) and clone.retry_after == 2.0
    dropped = CommerceConnectionError("dropped", operation="get")
    dropped.dropped = True
    assert pickle.loads(pickle.dumps(dropped)).dropped is True


@pytest.mark.parametrize("envelope", [odata, flat])
@pytest.mark.parametrize(
    "echo",
    [
        "ann%40example.com",
        "ANN%2540EXAMPLE.COM",
        "ann\\u0040example.com",
        "ann&#64;example.com",
        "ann&commat;example.com",
        "%2B4930123456",
        "a/ann@example.com",
        "{ann}@example.com",
        "ann=x&y?z|w@example.com",
    ],
)
def test_encoded_echoes_are_masked_and_code_status_members_survive(envelope, echo):
    rid = RUNTIME_PREFIX + "InvalidEmailAddress"
    body = envelope(rid, f"The value '{echo}' is not valid for Email.", ["Email", "Addresses[0].ZipCode"])
    error = error_from_response("create", FakeResponse(400, body))
    text = f"{error} {error!r} {error.message}"
    assert echo not in text and "ann" not in text.lower() and "30123456" not in text
    assert type(error) is CommerceValidationError and error.status == 400 and error.error_resource_id == rid
    assert error.member_names == ["Email", "Addresses[0].ZipCode"]
    assert str(error).startswith(f"create HTTP 400 {rid}: The value '<") and "is not valid for Email." in str(error)
    assert "(members: Email, Addresses[0].ZipCode)" in str(error)
