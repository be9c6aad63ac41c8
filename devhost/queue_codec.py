"""Queue message bodies as the trigger sees them (pure).

The Functions host (queues extension 5.x, on Azure.Storage.Queues) reads a message in two steps, and a
message can fail either one differently:
1. base64, with .NET's ``Convert.FromBase64String``: spaces, tabs and line breaks are skipped, any other
   character outside the alphabet, or wrong padding, fails. The host then moves the message to
   ``<queue>-poison`` at once, without an invocation and whatever its dequeue count;
2. the bytes as text for the function, strict UTF-8. A body that is not UTF-8 fails as a binding error:
   a failed invocation like any other (the function does not run), so the message is released and goes
   to poison after ``maxDequeueCount`` attempts.
Python's lenient ``b64decode`` would instead skip stray characters and decode messages the host refuses.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import azure.functions as func

_NET_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


class BindingError(ValueError):
    """The host could not turn the message into the function's argument (the body is not UTF-8)."""


def decode_body(raw: str | None, encoding: str) -> bytes | None:
    """The message body as bytes, or None when the host cannot decode it (step 1 above)."""
    text = raw or ""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return b64decode(text.translate(_NET_BASE64_WHITESPACE).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def check_text(body: bytes) -> None:
    """Raises BindingError unless ``body`` is UTF-8 text (step 2 above). The error names no content."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BindingError("the message body is not UTF-8 text") from None


def trigger_value(message: func.QueueMessage, annotation: Any) -> Any:
    """What the function receives: ``str``/``bytes`` when its parameter says so, else the QueueMessage."""
    if annotation in (str, "str"):
        return message.get_body().decode("utf-8")
    if annotation in (bytes, "bytes"):
        return message.get_body()
    return message
