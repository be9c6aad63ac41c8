from base64 import b64encode

from azure.functions.queue import QueueMessage

from devhost.queue_codec import decode_body, trigger_value


def test_base64_round_trip_utf8():
    raw = b64encode("héllo ✓".encode()).decode()
    assert decode_body(raw, "base64") == "héllo ✓".encode()


def test_invalid_base64_or_not_utf8_is_undecodable():
    assert decode_body("not base64!", "base64") is None
    assert decode_body(b64encode(b"\xff\xfe").decode(), "base64") is None


def test_none_encoding_passes_text_through():
    assert decode_body('{"a": 1}', "none") == b'{"a": 1}'


def test_trigger_value_follows_the_annotation():
    message = QueueMessage(id="1", body=b"abc", dequeue_count=2)
    assert trigger_value(message, str) == "abc"
    assert trigger_value(message, bytes) == b"abc"
    assert trigger_value(message, None) is message
