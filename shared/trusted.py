"""Models rebuilt from JSON that was validated before, without validating it again.

A service stores what it consumed after the contract validated it (the matching service's read
model keeps every `StudentProfile` and `PlacementOffer` as published). Reading thousands of them
back for a round, validating each again (every constraint, every model validator, e-mail syntax)
costs more than reading them. `Trusted(Model).load(json)` parses the JSON (pydantic's own
parser) and sets the fields directly: the conversions JSON needs (dates, tuples, nested models,
UUIDs, floats written as integers) are derived once from the model's field annotations, and a
field missing from older JSON gets its default. The result equals `Model.model_validate_json`
of the same JSON (the tests compare them) for JSON that model validated; it must never be used
for JSON that did not come from a validated model. An annotation it cannot convert (a dict, a
union of two types) raises `TypeError` when the `Trusted` is made, not on load.

For a model `shared.contracts.fastdecode` can follow (the profile models), the JSON is first
parsed by its msgspec decoder into the derived `Struct`, whose values are then set on the
model (about 1.5 times quicker than pydantic's parser and the conversions here: 20,000
generated profiles in 0.089 s against 0.130 s, their offers 0.040 s against 0.066 s). What it
gives is what pydantic gives for JSON the model validated (tests/unit/test_fastdecode.py). JSON
the decoder refuses (written by an older or newer model: a field since removed, a limit since
changed) takes the way above.
"""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec
import pydantic_core
from pydantic import BaseModel

from shared.contracts.fastdecode import unset_struct

M = TypeVar("M", bound=BaseModel)
Convert = Callable[[Any], Any]

_SETATTR = object.__setattr__
# BaseModel's slots, set directly (a frozen model's own __setattr__ refuses).
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__
_PLAIN: tuple[type, ...] = (str, int, bool, type(None))


_CLASS_CONVERTERS: dict[type, Convert | None] = {
    float: float,
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    uuid.UUID: uuid.UUID,
}


def _converter(annotation: Any) -> Convert | None:
    """How to turn the JSON value of `annotation` into the model's value; None: as parsed."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return _class_converter(annotation)
    if origin is typing.Annotated:
        return _converter(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{annotation}: only X | None unions are supported")
        inner = _converter(args[0])
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        items = typing.get_args(annotation)
        if len(items) != 2 or items[1] is not Ellipsis:
            raise TypeError(f"{annotation}: only tuple[X, ...] is supported")
        item = _converter(items[0])
        if item is None:
            return tuple
        return lambda v: tuple(map(item, v))
    raise TypeError(f"{annotation}: not supported")


def _not_none(annotation: Any) -> Any:
    """X of `X | None` (anything else as it is)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _class_converter(annotation: Any) -> Convert | None:
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return Trusted(annotation).from_dict
        if issubclass(annotation, Enum):
            return annotation
        if annotation in _CLASS_CONVERTERS:
            return _CLASS_CONVERTERS[annotation]
        if issubclass(annotation, _PLAIN):  # str and its subclasses, int, bool
            return None
    if getattr(annotation, "__name__", "") == "EmailStr":  # pydantic's EmailStr: text
        return None
    raise TypeError(f"{annotation!r}: not supported")


def _models_in_tuples(cls: type[BaseModel]) -> bool:
    """Whether a field is a tuple of models (`from_struct` makes models of fields only)."""
    for f in cls.model_fields.values():
        annotation = _not_none(f.annotation)
        if typing.get_origin(annotation) is tuple:
            item = _not_none(typing.get_args(annotation)[0])
            if isinstance(item, type) and issubclass(item, BaseModel):
                return True
    return False


class Trusted(Generic[M]):
    """Loads `cls` from JSON it validated before (see the module)."""

    def __init__(self, cls: type[M]) -> None:
        if cls.__pydantic_post_init__ is not None or cls.__private_attributes__:
            raise TypeError(f"{cls.__name__}: models with private attributes are not supported")
        self.cls = cls
        fields = cls.model_fields
        self._names = frozenset(fields)
        self._defaults = {name: f for name, f in fields.items() if not f.is_required()}
        converters: list[tuple[str, Convert]] = []
        for name, f in fields.items():
            # `from_dict` passes None through itself: a top-level `X | None` converts as X.
            convert = _converter(_not_none(f.annotation))
            if convert is not None:
                converters.append((name, convert))
        self.from_dict: Callable[[dict[str, Any]], M] = self._compile(converters)
        """The model of parsed JSON (the dict is taken over)."""
        struct = unset_struct(cls) if not _models_in_tuples(cls) else None
        self._decode_struct = None if struct is None else msgspec.json.Decoder(struct).decode
        self.from_struct: Callable[[Any], M] = self._compile_struct()
        """The model of its fast decoder's `Struct` (the fields' values are taken over)."""

    def load(self, text: str | bytes) -> M:
        """The model of `text` (JSON of an object this model validated before)."""
        if self._decode_struct is not None:
            try:
                return self.from_struct(self._decode_struct(text))
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass  # an older or newer model's JSON: parsed and reconciled below
        return self.from_dict(pydantic_core.from_json(text))

    def _env(self, **more: Any) -> dict[str, Any]:
        """The names the compiled functions use: how a model is made, and `more`."""
        return {
            "_new": self.cls.__new__,
            "_cls": self.cls,
            "_setattr": _SETATTR,
            "_set_fields": _SET_FIELDS_SET,
            "_set_extra": _SET_EXTRA,
            "_set_private": _SET_PRIVATE,
            "_all": set(self._names),
            **more,
        }

    def _compile_struct(self) -> Callable[[Any], M]:
        """`from_struct` as straight-line code: the values as they are, nested records made
        models by their own `Trusted`."""
        env = self._env(_unset=msgspec.UNSET)
        lines = ["def from_struct(s):", "    fields_set = set(_all)"]
        for i, (name, f) in enumerate(self.cls.model_fields.items()):
            if not name.isidentifier():
                raise TypeError(f"{name!r}: not a field name")
            lines.append(f"    v{i} = s.{name}")
            if not f.is_required():  # left out of the JSON: the default, and not set
                env[f"_d{i}"] = f.get_default(call_default_factory=True)
                lines += [
                    f"    if v{i} is _unset:",
                    f"        v{i} = _d{i}",
                    f"        fields_set.discard({name!r})",
                ]
            nested = _not_none(f.annotation)
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                env[f"_m{i}"] = Trusted(nested).from_struct
                lines.append(
                    f"    if v{i} is not None and v{i} is not _d{i}: v{i} = _m{i}(v{i})"
                    if not f.is_required()
                    else f"    if v{i} is not None: v{i} = _m{i}(v{i})"
                )
        values = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(self.cls.model_fields))
        lines += [
            "    m = _new(_cls)",
            f"    _setattr(m, '__dict__', {{{values}}})",
            "    _set_fields(m, fields_set)",
            "    _set_extra(m, None)",
            "    _set_private(m, None)",
            "    return m",
        ]
        exec("\n".join(lines), env)  # noqa: S102 (made only of field names and the lines above)
        function: Callable[[Any], M] = env["from_struct"]
        return function

    def _compile(self, converters: list[tuple[str, Convert]]) -> Callable[[dict[str, Any]], M]:
        """`from_dict` as straight-line code (one conversion a line, no loop): it runs once
        per row of a round's thousands."""
        env = self._env(
            _names=self._names,
            _count=len(self._names),
            _reconcile=self._reconcile,
            _len=len,
        )
        lines = ["def from_dict(d):"]
        for i, (name, convert) in enumerate(converters):
            if not name.isidentifier():  # field names are identifiers: nothing else is written
                raise TypeError(f"{name!r}: not a field name")
            env[f"_c{i}"] = convert
            lines += [
                f"    v = d.get({name!r})",
                "    if v is not None:",
                f"        d[{name!r}] = _c{i}(v)",
            ]
        lines += [
            "    fields_set = _all",
            "    if _len(d) != _count or not _names.issuperset(d):",
            "        d, fields_set = _reconcile(d)",
            "    m = _new(_cls)",
            "    _setattr(m, '__dict__', d)",
            "    _set_fields(m, fields_set)",
            "    _set_extra(m, None)",
            "    _set_private(m, None)",
            "    return m",
        ]
        exec("\n".join(lines), env)  # noqa: S102 (made only of field names and the lines above)
        function: Callable[[dict[str, Any]], M] = env["from_dict"]
        return function

    def _reconcile(self, values: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """JSON of an older or newer model: defaults for the fields it lacks, without the
        fields the model no longer has; in field order, and the fields it set."""
        fields_set = set(values) & self._names
        for name, f in self._defaults.items():
            if name not in values:
                values[name] = f.get_default(call_default_factory=True)
        missing = self._names - set(values)
        if missing:
            raise ValueError(f"{self.cls.__name__}: required fields missing: {sorted(missing)}")
        return {name: values[name] for name in self.cls.model_fields}, fields_set
