"""`EmailAddress`: pydantic's `EmailStr`, with the same answer for every input, found sooner.

`EmailStr` runs `email_validator` on every value: about 30 microseconds an address, so that a
file of 70,000 placements spends most of its validation there. This type gives the same result
for every string (accepted or not, the same normalised address, the same error) and takes a
short cut for the plain addresses nearly everyone has:

* a local part that is a dot-atom of `email_validator`'s own `ATEXT` characters, one @-sign,
  and an ASCII host name of two or more labels (letters, digits and inner hyphens, at most 63
  characters each, no `--` anywhere, the last label ending in a letter, not under one of
  `email_validator.SPECIAL_USE_DOMAIN_NAMES`), 254 characters in all.
  For such an address `email_validator` checks exactly these things and nothing more (its
  Unicode, IDNA and quoting rules have nothing to act on), and returns the local part as it
  is and the host name in lower case (UTS 46 maps ASCII letters to lower case and nothing
  else), which is what this type returns too;
* every other string goes to pydantic's own `validate_email` (and so to `email_validator`):
  role names it lower-cases (`Info@`), IDNA (`xn--`) and Unicode host names, quoted or
  display-name forms, whitespace, and everything it rejects, which then fails with the very
  error `EmailStr` gives. `email_validator.STRICT` (a local-part length limit) also sends every
  address there.

tests/unit/test_email_address.py compares the two on known cases and generated addresses. The
JSON schema is `EmailStr`'s (`{"type": "string", "format": "email"}`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import email_validator
from email_validator.rfc_constants import (
    ATEXT,
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DNS_LABEL_LENGTH_LIMIT,
    EMAIL_MAX_LENGTH,
)
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic.networks import validate_email as validate_email
from pydantic_core import core_schema

_LABEL = rf"[A-Za-z0-9](?:[A-Za-z0-9\-]{{0,{DNS_LABEL_LENGTH_LIMIT - 2}}}[A-Za-z0-9])?"
_TOP = rf"(?:[A-Za-z]|[A-Za-z0-9][A-Za-z0-9\-]{{0,{DNS_LABEL_LENGTH_LIMIT - 2}}}[A-Za-z])"
_PLAIN = re.compile(rf"([{ATEXT}]+(?:\.[{ATEXT}]+)*)@((?:{_LABEL}\.)+{_TOP})")
_ROLE_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _plain(value: str) -> str | None:
    """The normalised address when `value` is a plain address (module doc), else None."""
    if len(value) > EMAIL_MAX_LENGTH or email_validator.STRICT:
        return None
    match = _PLAIN.fullmatch(value)
    if match is None:
        return None
    local, domain = match.groups()
    if "--" in domain or local.lower() in _ROLE_NAMES:  # (the host name is < 254 characters)
        return None
    domain = domain.lower()
    special = email_validator.SPECIAL_USE_DOMAIN_NAMES
    rest = domain
    while True:
        if rest in special:
            return None
        dot = rest.find(".")
        if dot < 0:
            return f"{local}@{domain}"
        rest = rest[dot + 1 :]


def normalized_email(value: str) -> str:
    """What `EmailStr` makes of `value` (the normalised address), or its `PydanticCustomError`."""
    return _plain(value) or validate_email(value)[1]


if TYPE_CHECKING:
    EmailAddress = str
else:

    class EmailAddress(str):
        """An e-mail address, validated and normalised as `EmailStr` does it (module doc).
        Only an annotation: the values are plain `str` (code that maps annotations to
        conversions, such as `shared.trusted`, sees text)."""

        @classmethod
        def __get_pydantic_core_schema__(
            cls, _source: type[Any], _handler: GetCoreSchemaHandler
        ) -> core_schema.CoreSchema:
            return core_schema.no_info_after_validator_function(
                normalized_email, core_schema.str_schema()
            )

        @classmethod
        def __get_pydantic_json_schema__(
            cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
        ) -> JsonSchemaValue:
            field_schema = handler(schema)
            field_schema.update(type="string", format="email")
            return field_schema
