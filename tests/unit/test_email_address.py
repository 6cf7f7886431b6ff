"""`EmailAddress` answers exactly as pydantic's `EmailStr`: the same accepted inputs, the same
normalised address, the same errors (shared/contracts/email_address.py)."""

from __future__ import annotations

import email_validator
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, EmailStr, TypeAdapter, ValidationError

from shared.contracts import email_address
from shared.contracts.email_address import EmailAddress, normalized_email


class _Old(BaseModel):
    model_config = ConfigDict(strict=True)
    email: EmailStr


class _New(BaseModel):
    model_config = ConfigDict(strict=True)
    email: EmailAddress


def _answer(model: type[BaseModel], value: object) -> tuple[str, object]:
    try:
        return "ok", model.model_validate({"email": value}).model_dump()["email"]
    except ValidationError as err:
        return "error", err.errors(include_url=False)


def _same(value: object) -> None:
    assert _answer(_New, value) == _answer(_Old, value), repr(value)


CASES = [
    "anna@example.se",
    "Anna.Berg@Example.SE",
    "handledare.p-000123@example.se",
    "a!#$%&'*+/=?^_`{|}~-@x.org",
    "INFO@example.se",  # a role name: email_validator lower-cases it
    "Postmaster@example.se",
    "info.x@example.se",
    "anna@xn--bcher-kva.example",  # IDNA: the domain comes back in Unicode
    "anna@XN--BCHER-KVA.example",
    "anna@bücher.example",
    "anna@ab--cd.example",  # an invalid R-LDH label
    "anna@-x.example",
    "anna@x-.example",
    "anna@x..example",
    "anna@.example",
    "anna@example.",
    "anna@example",  # no period
    "anna@example.123",  # no top-level domain
    "anna@host.local",  # special-use
    "anna@host.test",
    "anna@localhost",
    "anna@@example.se",
    "anna.@example.se",
    ".anna@example.se",
    "an..na@example.se",
    "anna@",
    "@example.se",
    "anna",
    "",
    " anna@example.se",
    "anna@example.se ",
    "Anna Berg <anna@example.se>",
    "<anna@example.se>",
    '"anna"@example.se',
    '"an na"@example.se',
    "anna@[127.0.0.1]",
    "anna\n@example.se",
    "åsa@example.se",
    "anna@exa_mple.se",
    "a" * 64 + "@example.se",
    "a" * 65 + "@example.se",
    "a" * 240 + "@example.se",  # 251 characters
    "a" * 243 + "@example.se",  # 254
    "a" * 244 + "@example.se",  # 255
    "anna@" + "b" * 63 + ".se",
    "anna@" + "b" * 64 + ".se",
    "x@" + ".".join(["b" * 60] * 4) + ".se",  # a domain of 247 characters
    "anna@" + ".".join(["b" * 61] * 4) + ".se",  # of 250
    "x" * 3000,
    # IDNA labels whose Unicode form is longer in UTF-8: 254 characters as given, too long after
    # normalisation
    "a" * 151 + "@" + ".".join(["xn--fiqaaaaaaaaaaaaaaaaa"] * 4) + ".se",
    7,
    None,
]


def test_known_cases_answer_as_email_str() -> None:
    for value in CASES:
        _same(value)


ATOM = "abcXYZ019_!#$%&'*+-/=?^`{|}~"
_local = st.lists(st.text(ATOM, min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)
_label = st.one_of(
    st.sampled_from(["se", "fi", "com", "example", "xn--bcher-kva", "local", "test", "arpa", "-a"]),
    st.text("abcXYZ019-", min_size=1, max_size=8),
)
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join)
_mixed = st.text("aZ9.-@_ <>\"'\\å\u0301\u200b\t\n[]:", max_size=24)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.tuples(_local, _domain).map("@".join), _mixed))
def test_generated_addresses_answer_as_email_str(value: str) -> None:
    _same(value)


def test_email_validator_settings_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The short cut reads `email_validator`'s settings as `email_validator` does."""
    monkeypatch.setattr(
        email_validator,
        "SPECIAL_USE_DOMAIN_NAMES",
        [*email_validator.SPECIAL_USE_DOMAIN_NAMES, "se"],
    )
    for value in ("anna@example.se", "anna@example.fi"):
        _same(value)
    assert _answer(_New, "anna@example.se")[0] == "error"
    monkeypatch.setattr(email_validator, "STRICT", True)
    for value in ("a" * 64 + "@example.fi", "a" * 65 + "@example.fi"):
        _same(value)
    assert _answer(_New, "a" * 65 + "@example.fi")[0] == "error"


def test_plain_addresses_take_the_short_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain addresses are not handed to `email_validator` (what makes the type faster)."""
    handed: list[str] = []
    original = email_address.validate_email

    def counted(value: str) -> tuple[str, str]:
        handed.append(value)
        return original(value)

    monkeypatch.setattr(email_address, "validate_email", counted)
    assert normalized_email("Handledare.P-1@Foretag.Example.SE") == (
        "Handledare.P-1@foretag.example.se"
    )
    assert normalized_email("Info@example.se") == "info@example.se"
    assert handed == ["Info@example.se"]


def test_json_schema_is_that_of_email_str() -> None:
    assert TypeAdapter(EmailAddress).json_schema() == TypeAdapter(EmailStr).json_schema()
    assert _New.model_json_schema()["properties"] == _Old.model_json_schema()["properties"]
