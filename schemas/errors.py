"""Errors raised when data does not match its schema.

    SchemaError                 (hangs from headwater.errors.HeadwaterError)
    ├── UnknownSchemaError      a message names a schema id the registry does not have
    └── DecodeError             a message is not in the Confluent wire format, or its body is corrupt
"""

from headwater.errors import HeadwaterError


class SchemaError(HeadwaterError):
    """Base of the errors this package raises."""


class UnknownSchemaError(SchemaError):
    """The message's schema id is not in ``avro/registry.json``."""


class DecodeError(SchemaError):
    """The message cannot be decoded."""
