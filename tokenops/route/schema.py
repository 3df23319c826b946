"""Validate a model's JSON answer against a JSON Schema: the common subset, without a new dependency.

Supported keywords: `type` (one or a list), `enum`, `const`, `properties`, `required`,
`additionalProperties` (bool or schema), `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
`pattern`, `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `allOf`/`anyOf`/`oneOf`.
A schema using `$ref` is refused when the check is built, rather than silently not enforced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse schemas using keywords this validator would not enforce, or not shaped like a schema."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"a JSON schema must be an object, not {type(schema).__name__}")
    for key in ("properties", "patternProperties"):
        if not isinstance(schema.get(key) or {}, Mapping):
            raise ValueError(f"JSON schema {key!r} must be an object")
    if "$ref" in schema or "$defs" in schema or "definitions" in schema:
        raise ValueError("JSON schemas with $ref are not supported by tokenops' cascade check; inline the definitions")
    for key in ("properties", "patternProperties"):
        for sub in (schema.get(key) or {}).values():
            check_schema(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            check_schema(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            check_schema(sub)


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("number", "integer"):
        return False  # JSON booleans are not numbers, although Python's bool is an int
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, ()))


def errors(value: object, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every violation, as `path: what is wrong` (empty: valid)."""
    out: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_is_type(value, k) for k in kinds):
            return [f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: expected {schema['const']!r}")
    if isinstance(value, dict):
        out += _object(value, schema, path)
    elif isinstance(value, list):
        out += _array(value, schema, path)
    elif isinstance(value, str):
        out += _string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out += _number(value, schema, path)
    out += _combined(value, schema, path)
    return out


def _object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    out = [f"{path}: missing required {name!r}" for name in schema.get("required", []) if name not in value]
    props: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            out += errors(item, props[name], f"{path}.{name}")
        elif extra is False:
            out.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, Mapping):
            out += errors(item, extra, f"{path}.{name}")
    return out


def _array(value: list[Any], schema: Mapping[str, Any], path: str) -> list[str]:
    out: list[str] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(f"{path}: more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            out += errors(item, items, f"{path}[{i}]")
    return out


def _string(value: str, schema: Mapping[str, Any], path: str) -> list[str]:
    out: list[str] = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(f"{path}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(f"{path}: longer than {schema['maxLength']}")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        out.append(f"{path}: does not match {schema['pattern']!r}")
    return out


def _number(value: float, schema: Mapping[str, Any], path: str) -> list[str]:
    ok: dict[str, Callable[[float], bool]] = {
        "minimum": lambda b: value >= b,
        "maximum": lambda b: value <= b,
        "exclusiveMinimum": lambda b: value > b,
        "exclusiveMaximum": lambda b: value < b,
    }
    broken = [name for name, test in ok.items() if name in schema and not test(schema[name])]
    return [f"{path}: {value!r} violates {name} {schema[name]!r}" for name in broken]


def _combined(value: object, schema: Mapping[str, Any], path: str) -> list[str]:
    out: list[str] = []
    for sub in schema.get("allOf") or []:
        out += errors(value, sub, path)
    if "anyOf" in schema and all(errors(value, sub, path) for sub in schema["anyOf"]):
        out.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema and sum(not errors(value, sub, path) for sub in schema["oneOf"]) != 1:
        out.append(f"{path}: does not match exactly one of oneOf")
    return out
