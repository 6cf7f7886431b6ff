"""Every API request's input, checked before a handler sees it (a dependency of the API routers,
after the access rule): what the models alone would let through to a 500 or coerce silently.

- No NUL character in a path or query parameter or anywhere in a JSON body (PostgreSQL text
  cannot hold one): a 422 naming the parameter or the body field (`items[3].title`); no path
  parameter longer than an id can be.
- A JSON body is validated strictly, as the Kafka contract is: no string or boolean for a
  number (`capacity: "2"`, `capacity: true`), no number for a date (`starts_on: 0` is not
  1970-01-01), no NaN or Infinity. The models themselves stay lenient, because the web pages
  validate form fields, which are all text, with them.

A body that is not UTF-8 or not JSON never gets here: `problems.py` answers it, 422 naming
`(body)`. The pages' routers check their address and forms for NUL characters too
(`clean_parameters`, `clean_form`), which then show the error page.
"""

from __future__ import annotations

import email.message
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from ..domain.errors import FieldError, Invalid
from .problems import validation_errors

NUL = "\x00"
NUL_MESSAGE = "must not contain a NUL character"
MAX_PATH_PARAMETER = 200
"""Characters of a path parameter at most: no id of the contract is longer."""

_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


def nul_paths(value: Any, path: str = "") -> Iterator[str]:
    """The names (`items[3].title`, `preferences[0]`) of the strings in a parsed JSON value
    that hold a NUL character (a key with one is named by the key itself)."""
    if isinstance(value, str):
        if NUL in value:
            yield path or "(body)"
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                yield name
            else:
                yield from nul_paths(item, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nul_paths(item, f"{path}[{i}]")


def _is_json(request: Request) -> bool:
    """Whether FastAPI parses this request's body as JSON (its own content-type test)."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _adapter(route: APIRoute) -> TypeAdapter[Any] | None:
    """The route's body model as a type adapter (made once per route)."""
    field = route.body_field
    if field is None or field.field_info.annotation is None:
        return None
    found = _ADAPTERS.get(id(route))
    if found is None:
        found = _ADAPTERS[id(route)] = TypeAdapter(field.field_info.annotation)
    return found


def clean_parameters(request: Request) -> None:
    """Refuse a NUL character in a path or query parameter, and a path parameter longer than an
    id, naming each. It runs before the access rule, which looks the path's ids up."""
    errors: list[FieldError] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            errors.append(FieldError(name, NUL_MESSAGE))
        elif isinstance(value, str) and len(value) > MAX_PATH_PARAMETER:
            errors.append(FieldError(name, f"at most {MAX_PATH_PARAMETER} characters"))
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            errors.append(FieldError(name, NUL_MESSAGE))
    if errors:
        raise Invalid(errors)


async def clean_form(request: Request) -> None:
    """A page's form (the web routers): refuse a NUL character in any field, naming it."""
    content_type = request.headers.get("content-type", "")
    if request.method != "POST" or not content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return
    form = await request.form()  # kept by the request: the route reads the same form
    errors = [
        FieldError(name, NUL_MESSAGE)
        for name, value in form.multi_items()
        if NUL in name or (isinstance(value, str) and NUL in value)
    ]
    if errors:
        raise Invalid(errors)


async def strict_input(request: Request) -> None:
    """Refuse, naming every bad field, a NUL character anywhere in a JSON body and a body that
    the strict contract types refuse. It runs after the access rule (a caller who may not call
    the route hears that first)."""
    errors: list[FieldError] = []
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and _is_json(request) and await request.body():
        adapter = _adapter(route)
        if adapter is not None:
            errors += _body_errors(adapter, await request.body(), await request.json())
    if errors:
        raise Invalid(errors)  # the reply names the first MAX_ERRORS and counts them all


def _body_errors(adapter: TypeAdapter[Any], raw: bytes, parsed: Any) -> list[FieldError]:
    errors = [FieldError(name, NUL_MESSAGE) for name in nul_paths(parsed)]
    try:
        adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        located = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        errors += validation_errors(RequestValidationError(located))
    return errors
