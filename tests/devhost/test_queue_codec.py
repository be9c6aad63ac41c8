from base64 import b64encode

import pytest
from azure.functions.queue import QueueMessage

from devhost.queue_codec import BindingError, check_text, decode_body, trigger_value


def test_base64_round_trip_utf8():
    raw = b64encode("héllo ✓".encode()).decode()
    assert decode_body(raw, "base64") == "héllo ✓".encode()


@pytest.mark.parametrize("raw", ["not base64!", "aGVsbG8", "aGVs!bG8=", "aGVsbG8=\x00", "aGVsbG8=aGVs", "aGVsbG8é"])
def test_what_the_host_cannot_decode_is_undecodable(raw):
    # Python's default b64decode would skip the stray "!" or NUL and decode some of these.
    assert decode_body(raw, "base64") is None


def test_whitespace_is_skipped_like_dotnet_does():
    assert decode_body(" aGVs\r\nbG8=\t", "base64") == b"hello"
    assert decode_body("", "base64") == b""


def test_base64_of_bytes_that_are_not_utf8_decodes_but_does_not_bind():
    body = decode_body(b64encode(b"\xff\xfe secret").decode(), "base64")
    assert body == b"\xff\xfe secret"
    with pytest.raises(BindingError) as raised:
        check_text(body)
    assert "secret" not in str(raised.value) and "xff" not in str(raised.value)
    check_text("héllo".encode())


def test_none_encoding_passes_text_through():
    assert decode_body('{"a": 1}', "none") == b'{"a": 1}'


def test_trigger_value_follows_the_annotation():
    message = QueueMessage(id="1", body=b"abc", dequeue_count=2)
    assert trigger_value(message, str) == "abc"
    assert trigger_value(message, bytes) == b"abc"
    assert trigger_value(message, None) is message
