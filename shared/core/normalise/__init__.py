"""Pure normalisers, one module per kind of value. Each returns the normalised value or raises
``Invalid(code, message)``; messages never quote the input, so they are safe to log and return."""

from shared.core.normalise.invalid import Invalid

__all__ = ["Invalid"]
