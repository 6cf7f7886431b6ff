"""Contract records read quickly: msgspec decoders derived from the pydantic models.

The pydantic models stay the one definition of a record and the judge of every doubtful line.
`FastDecoder(model)` derives a msgspec `Struct` from the model's fields (their types, limits,
patterns and defaults; unknown fields refused, no coercion across types) and decodes a JSON
line with it, about five times sooner than the model's own `validate_json`. A line takes the
fast way only when it is certain to give the very values pydantic would give; every other line
is validated by the model itself, which then returns its model or raises its own
`ValidationError`:

* a line msgspec refuses (bad JSON, a wrong type, a limit broken, an unknown field);
* a string with whitespace at either end, anywhere in the record (pydantic strips the fields
  that say so, and its patterns are matched differently at a trailing line end);
* a value of a type with its own pydantic validator (`EmailAddress`), unless pydantic takes it
  unchanged: each distinct value is asked once;
* a record the model's `after` validators refuse (they are called with the `Struct`, which has
  the same attributes).

A model the derivation cannot follow exactly (aliases, default factories, lax mode, `before`
or `wrap` validators, field validators, types other than those below) raises `Unsupported`,
and its caller reads with pydantic alone. Supported: `str`, `int`, `float` (msgspec's JSON
decoder refuses `NaN`, `Infinity` and numbers beyond a double, as models that forbid
infinities do), `bool`, `date`, `Literal`s, `X | None`, `tuple[X, ...]`, nested contract
models, pydantic's length, bound and pattern constraints, and string types with their own
validator.

A decoded `Struct` is not the model: it has the model's attributes and nothing else (what the
engine reads). tests/unit/test_fastdecode.py checks that both ways give the same values.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import date
from functools import cache
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)

Check = Callable[[Any], bool]
"""Is this decoded value (or record) certain to be what pydantic gives?"""


class Unsupported(TypeError):
    """The model has something the derived decoder cannot follow exactly."""


class _Derived:
    """What one annotation becomes: its msgspec type; `strings`, how its value holds strings
    (`"one"`: a str or None, `"many"`: a tuple of them, None: no string); and `check`, what
    else its decoded value needs (None: nothing)."""

    __slots__ = ("check", "strings", "type")

    def __init__(self, tp: Any, check: Check | None = None, strings: str | None = None) -> None:
        self.type = tp
        self.check = check
        self.strings = strings


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The values of `names` of a record, as a tuple (also for one name)."""
    if len(names) == 1:
        (name,) = names
        return lambda record: (getattr(record, name),)
    return attrgetter(*names)


class _Builder:
    def __init__(self, *, unset: bool = False) -> None:
        self.structs: dict[type[BaseModel], _Derived] = {}
        self.unset = unset
        """Fields with a default get `msgspec.UNSET` instead, to tell which the JSON left out."""

    def model(self, model: type[BaseModel]) -> _Derived:
        known = self.structs.get(model)
        if known is not None:
            return known
        config = model.model_config
        if config.get("extra") != "forbid" or not config.get("strict"):
            raise Unsupported(f"{model.__name__}: only strict models that forbid extras")
        if config.get("alias_generator") or config.get("populate_by_name"):
            raise Unsupported(f"{model.__name__}: aliases")
        afters = _after_validators(model)
        fields: list[tuple[str, Any, Any]] = []
        one: list[str] = []
        many: list[str] = []
        checks: list[tuple[str, Check]] = []
        for name, info in model.model_fields.items():
            derived = self.field(model, name, info)
            default = msgspec.NODEFAULT if info.default is PydanticUndefined else info.default
            if self.unset and default is not msgspec.NODEFAULT:
                fields.append((name, derived.type | msgspec.UnsetType, msgspec.UNSET))
            else:
                fields.append((name, derived.type, default))
            {"one": one, "many": many}.get(derived.strings or "", []).append(name)
            if derived.check is not None:
                checks.append((name, derived.check))
        # msgspec wants the fields without a default first: decoding is by name, so the order
        # of the attributes changes nothing.
        fields.sort(key=lambda f: f[2] is not msgspec.NODEFAULT)
        struct = msgspec.defstruct(
            f"Fast{model.__name__}",
            [(n, t) if d is msgspec.NODEFAULT else (n, t, d) for n, t, d in fields],
            forbid_unknown_fields=True,
            frozen=True,
        )
        derived = _Derived(struct, _record_check(one, many, checks, afters))
        self.structs[model] = derived
        return derived

    def field(self, model: type[BaseModel], name: str, info: FieldInfo) -> _Derived:
        where = f"{model.__name__}.{name}"
        if info.alias not in (None, name) or info.validation_alias not in (None, name):
            raise Unsupported(f"{where}: an alias")
        if info.default_factory is not None:
            raise Unsupported(f"{where}: a default factory")
        tp: Any = info.annotation
        if info.metadata:
            tp = Annotated[(tp, *info.metadata)]
        return self.annotation(tp, where)

    def annotation(self, tp: Any, where: str) -> _Derived:
        origin = get_origin(tp)
        if origin is Annotated:
            return self.annotated(tp, where)
        if origin in (Union, types.UnionType):
            inner = self.annotation(_optional_arm(tp, where), where)
            check = None if inner.check is None else _or_none(inner.check)
            return _Derived(inner.type | None, check, inner.strings)
        if origin is tuple:
            args = get_args(tp)
            if len(args) != 2 or args[1] is not Ellipsis:
                raise Unsupported(f"{where}: a tuple other than tuple[X, ...]")
            item = self.annotation(args[0], where)
            if item.strings == "many" or (
                item.strings is None
                and item.check is None
                and get_origin(args[0]) is not Literal
                and args[0] not in (int, bool, float, date)
                and not _is_model(args[0])
            ):
                raise Unsupported(f"{where}: a tuple of {args[0]!r}")
            check = None if item.check is None else _each(item.check)
            strings = "many" if item.strings == "one" else None
            return _Derived(tuple[item.type, ...], check, strings)  # type: ignore[name-defined]
        if origin is Literal:
            return _Derived(tp)
        if tp is str:
            return _Derived(str, strings="one")
        if tp in (int, bool, float, date):
            # msgspec's JSON decoder gives no infinity or NaN: it refuses `NaN` and a number
            # out of a double's range, as a model that forbids them does.
            return _Derived(tp)
        if _is_model(tp):
            return self.model(tp)
        if isinstance(tp, type) and hasattr(tp, "__get_pydantic_core_schema__"):
            return _Derived(str, _asked(tp, where), "one")
        raise Unsupported(f"{where}: the type {tp!r}")

    def annotated(self, tp: Any, where: str) -> _Derived:
        """`Annotated[X, *metadata]`: X with msgspec's constraints for pydantic's."""
        base, *metadata = get_args(tp)
        if get_origin(base) in (Union, types.UnionType):
            # pydantic puts the limits of `X | None` on X
            arm = _optional_arm(base, where)
            return self.annotation(Annotated[(arm, *metadata)] | None, where)
        meta = _meta(metadata, where)
        inner = self.annotation(base, where)
        if meta:
            return _Derived(Annotated[(inner.type, *meta)], inner.check, inner.strings)
        return inner


def _record_check(
    one: list[str],
    many: list[str],
    checks: list[tuple[str, Check]],
    afters: list[Callable[[Any], Any]],
) -> Check | None:
    """The check of a record whose fields `one` hold a string (or None) and `many` a tuple of
    them (or None), whose fields of `checks` need those checks, and whose model has the
    `afters` validators; None when there is nothing to check.

    No string of the record's own fields (nested records check theirs) may have whitespace at
    either end: pydantic would strip it, and a pattern's `$` is matched differently before a
    final line end."""
    if not (one or many or checks or afters):
        return None
    singles = _getter(one) if one else None
    tuples = _getter(many) if many else None

    def check(record: Any) -> bool:
        strings: list[str] = []
        if singles is not None:
            strings += [v for v in singles(record) if v is not None]
        if tuples is not None:
            strings += chain.from_iterable(t for t in tuples(record) if t is not None)
        if list(map(str.strip, strings)) != strings:
            return False
        for name, field_check in checks:
            if not field_check(getattr(record, name)):
                return False
        try:
            for after in afters:
                after(record)
        except (ValueError, AssertionError):
            return False
        return True

    return check


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _after_validators(model: type[BaseModel]) -> list[Callable[[Any], Any]]:
    """The model's `after` validators; any other kind of validator is `Unsupported`."""
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.validators or decorators.root_validators:
        raise Unsupported(f"{model.__name__}: field validators")
    afters: list[Callable[[Any], Any]] = []
    for dec in decorators.model_validators.values():
        if dec.info.mode != "after":
            raise Unsupported(f"{model.__name__}: a {dec.info.mode} model validator")
        afters.append(dec.func)
    return afters


def _optional_arm(tp: Any, where: str) -> Any:
    """X of the union `X | None`."""
    args = get_args(tp)
    if type(None) not in args or len(args) != 2:
        raise Unsupported(f"{where}: a union other than X | None")
    return next(a for a in args if a is not type(None))


def _or_none(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _each(check: Check) -> Check:
    return lambda values: all(map(check, values))


def _asked(tp: type, where: str) -> Check:
    """A string type with its own pydantic validator: each distinct value is validated by
    pydantic once, and passes only when pydantic keeps it as it is."""
    adapter: TypeAdapter[Any] = TypeAdapter(tp)
    if adapter.json_schema().get("type") != "string":
        raise Unsupported(f"{where}: {tp!r} is not a string type")
    answers: dict[str, bool] = {}

    def check(value: str) -> bool:
        known = answers.get(value)
        if known is None:
            try:
                known = adapter.validate_python(value, strict=True) == value
            except ValidationError:
                known = False
            answers[value] = known
        return known

    return check


_BOUNDS = {at.Ge: "ge", at.Le: "le", at.Gt: "gt", at.Lt: "lt"}


def _meta(metadata: list[Any], where: str) -> list[msgspec.Meta]:
    """msgspec constraints for pydantic's metadata of one annotation. `strip_whitespace` needs
    none: a string with whitespace at an end never takes the fast way."""
    out: list[msgspec.Meta] = []
    for item in metadata:
        if isinstance(item, StringConstraints):
            if item.to_upper or item.to_lower or item.strict is False:
                raise Unsupported(f"{where}: a string constraint that changes the value")
            pattern = item.pattern
            if pattern is not None and not isinstance(pattern, str):
                raise Unsupported(f"{where}: a compiled pattern")
            out.append(
                msgspec.Meta(
                    min_length=item.min_length, max_length=item.max_length, pattern=pattern
                )
            )
        elif isinstance(item, at.MinLen):
            out.append(msgspec.Meta(min_length=item.min_length))
        elif isinstance(item, at.MaxLen):
            out.append(msgspec.Meta(max_length=item.max_length))
        elif type(item) in _BOUNDS:
            key = _BOUNDS[type(item)]
            out.append(msgspec.Meta(**{key: getattr(item, key)}))
        elif type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) <= {"strict"}:
            continue  # strict=True on a field: the model is strict already
        else:
            raise Unsupported(f"{where}: the constraint {item!r}")
    return out


class FastDecoder(Generic[M]):
    """Decode JSON lines of `model` with a derived msgspec decoder; a line the fast way cannot
    be sure of is validated by the model itself (see the module's docstring)."""

    def __init__(self, model: type[M]) -> None:
        derived = _Builder().model(model)
        self.struct: type[msgspec.Struct] = derived.type
        """The derived `Struct` (records that took the fast way are of it)."""
        self._check: Check = derived.check or (lambda _: True)
        self._decode = msgspec.json.Decoder(derived.type).decode
        self._validate = model.__pydantic_validator__.validate_json

    def decode(self, line: str) -> M | Any:
        """The record of one JSON line: a `Struct` with the model's values, or the model
        itself; raises pydantic's `ValidationError` for a line the model refuses."""
        try:
            record = self._decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._validate(line)
        if self._check(record):
            return record
        return self._validate(line)


@cache
def unset_struct(model: type[BaseModel]) -> type[msgspec.Struct] | None:
    """The `Struct` derived from `model` as `FastDecoder`'s, except that a field with a
    default is `msgspec.UNSET` where the JSON leaves it out (in nested records too); None when
    the model is `Unsupported`. For JSON the model validated before (`shared.trusted`)."""
    try:
        struct: type[msgspec.Struct] = _Builder(unset=True).model(model).type
    except Unsupported:
        return None
    return struct


@cache
def fast_decoder(model: type[M]) -> FastDecoder[M] | None:
    """The process's `FastDecoder` of `model` (derived once), or None when the model is
    `Unsupported`."""
    try:
        return FastDecoder(model)
    except Unsupported:
        return None


__all__ = ["FastDecoder", "Unsupported", "fast_decoder", "unset_struct"]
