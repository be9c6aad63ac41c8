"""Queue message bodies as the trigger sees them (pure)."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import azure.functions as func


def decode_body(raw: str | None, encoding: str) -> bytes | None:
    """The message body, or None when it cannot be decoded (the host then moves it to poison).

    base64 follows the SDK's TextBase64DecodePolicy: lenient base64, then UTF-8 text.
    """
    text = raw or ""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return b64decode(text.encode("utf-8")).decode("utf-8").encode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def trigger_value(message: func.QueueMessage, annotation: Any) -> Any:
    """What the function receives: ``str``/``bytes`` when its parameter says so, else the QueueMessage."""
    if annotation in (str, "str"):
        return message.get_body().decode("utf-8")
    if annotation in (bytes, "bytes"):
        return message.get_body()
    return message
