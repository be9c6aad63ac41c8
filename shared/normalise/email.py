"""Email addresses: syntax per email-validator, NFC, IDNA (ASCII) domain, lower-cased match key.

The local part is kept as sent (case included): characters such as ' % / + are valid and must reach
Commerce unchanged. The match key lower-cases the whole address and does no plus- or dot-folding:
two spellings are the same customer only when they differ in case alone.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from shared.normalise.errors import Invalid
from shared.normalise.text import _FORBIDDEN

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit; below Commerce's 255-character locator column


def normalise_email(value: object) -> tuple[str, str]:
    """Return ``(email, match_key)``. Raises ``Invalid`` with a message that never quotes the value."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    value = value.strip()
    if not value:
        raise Invalid("required", "must not be empty")
    if len(value) > 4 * MAX_EMAIL_LENGTH or _FORBIDDEN.search(value):
        raise Invalid("invalid_email", "not a valid email address")
    value = unicodedata.normalize("NFC", value)
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise Invalid("invalid_email", "not a valid email address") from None
    if len(result.local_part) > 64:  # RFC 5321 limit; email-validator does not always apply it
        raise Invalid("invalid_email", "not a valid email address")
    email = f"{result.local_part}@{result.ascii_domain}"
    if len(email) > MAX_EMAIL_LENGTH:
        raise Invalid("too_long", f"must be at most {MAX_EMAIL_LENGTH} characters")
    return email, email.lower()
