"""Load a YAML file into a pydantic model, failing with one line that names the problem.

Users edit configs by hand; a traceback for a typo in a key would bury the one
fact they need (which file, which key, what is wrong), so every failure here
becomes a `ConfigError` whose message is that single line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from radreport.utf8_text import NotUtf8Text, decode_utf8

ModelT = TypeVar("ModelT", bound=BaseModel)
YAML_MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming file, key and problem."""


class ConfigSection(BaseModel):
    """A section of a config file: an unknown key is an error, and so is true/false for a number.

    Pydantic's lax mode reads `epochs: true` as 1: a slip, never a count. Its strict mode
    would refuse it too, but also the plain strings YAML gives for paths, so only booleans
    given to number fields are refused here.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and wants_number_not_bool(
            cls.model_fields[info.field_name].annotation
        ):
            raise PydanticCustomError("bool_for_number", "Input should be a number, not true/false")
        return value


def wants_number_not_bool(annotation: Any) -> bool:
    accepted = list(accepted_types_and_values(annotation))
    takes_bool = any(item is bool or isinstance(item, bool) for item in accepted)
    takes_number = any(item in (int, float) or type(item) in (int, float) for item in accepted)
    return takes_number and not takes_bool


def accepted_types_and_values(annotation: Any) -> Iterator[Any]:
    """The plain types and Literal values a field annotation accepts, through unions,
    Optional and Annotated constraints (PositiveInt is Annotated[int, ...])."""
    origin = get_origin(annotation)
    if origin is Literal:
        yield from get_args(annotation)
    elif origin is Annotated:
        yield from accepted_types_and_values(get_args(annotation)[0])
    elif origin in (Union, UnionType):
        for arm in get_args(annotation):
            yield from accepted_types_and_values(arm)
    else:
        yield annotation


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names a key twice; PyYAML alone would keep the last value silently."""


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load's loader, refusing duplicate keys: a user who reads the first `epochs:` in
    a file would otherwise train with a value written further down."""

    def construct_document(self, node: yaml.Node) -> Any:
        refuse_duplicate_keys(node, where=(), visited=set())
        return super().construct_document(node)


def refuse_duplicate_keys(node: yaml.Node, where: tuple[str, ...], visited: set[int]) -> None:
    # Aliases reuse a node, and may nest it in itself: each node is checked once.
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            refuse_duplicate_keys(item, (*where, str(index)), visited)
    if not isinstance(node, yaml.MappingNode):
        return
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        # Keys brought in by a `<<: *anchor` merge may be overridden; written ones may not.
        if key_node.tag == YAML_MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in first_lines:
            section = ".".join(where) or "the top level"
            raise DuplicateKeyError(
                problem=f"duplicate key '{key}' (in {section}; first on line {first_lines[key]})",
                problem_mark=key_node.start_mark,
            )
        first_lines[key] = line
        refuse_duplicate_keys(value_node, (*where, key), visited)


def load_yaml_model(path: str | Path, model: type[ModelT]) -> ModelT:
    path = Path(path)
    try:
        found = path.is_file()
    except PermissionError:  # a folder above it cannot be entered
        raise ConfigError(f"{path}: permission denied") from None
    if not found:
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.load(read_utf8_text(path), Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {describe_yaml_error(exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_first_error(exc, model)}") from None


def read_utf8_text(path: Path) -> str:
    """The file's text; raises ConfigError naming the first byte that is not UTF-8 (a
    config saved as latin-1 by an editor) rather than the decoder's traceback."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return decode_utf8(data)
    except NotUtf8Text as exc:
        raise ConfigError(f"{path}: {exc}") from None


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    problem = getattr(exc, "problem", exc)
    if isinstance(exc, DuplicateKeyError):
        return f"{where}{problem}"
    return f"{where}not valid YAML ({problem})"


def union_field_depth(model: type[BaseModel], loc: tuple) -> int | None:
    """How many parts of `loc` name a field whose annotation is a union, where `loc` goes on
    into one of its arms (pydantic adds the arm's tag, e.g. "constrained-int"); None where
    it does not."""
    current: Any = model
    for depth, part in enumerate(loc, start=1):
        if not _is_model(current):
            return None
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        current = field.annotation
        if get_origin(current) in (Union, UnionType) and depth < len(loc):
            models = [arm for arm in get_args(current) if _is_model(arm)]
            # `Section | None` is no choice of arms: its errors go on into the section.
            if len(models) == 1 and len(get_args(current)) == 2 and type(None) in get_args(current):
                current = models[0]
                continue
            return depth
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def describe_first_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    errors = exc.errors()
    first = errors[0]
    depth = union_field_depth(model, first["loc"]) if model is not None else None
    if depth is not None:
        # A value no arm of a union accepts (`max_new_tokens: lots`, where a number or
        # "auto" is): say what each arm wanted, not only the first arm's complaint.
        field = first["loc"][:depth]
        wanted = [error["msg"] for error in errors if error["loc"][:depth] == field]
        key = ".".join(str(part) for part in field)
        said = "; or ".join(
            [wanted[0], *(msg.replace("Input should", "should", 1) for msg in wanted[1:])]
        )
        return f"{key}: {said} (got {first.get('input')!r})"
    key = ".".join(str(part) for part in first["loc"]) or "<top level>"
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if first["type"] == "missing":
        return f"{key}: required key is missing"
    if first["type"] == "value_error":
        said = first["ctx"]["error"]  # our validator's own words, without "Value error, "
        if isinstance(first.get("input"), dict):
            # A check across several keys of a section: its message names them and their
            # values, where the whole section as "got" would be one very long line.
            return f"{key}: {said}"
        return f"{key}: {said} (got {first.get('input')!r})"
    return f"{key}: {first['msg']} (got {first.get('input')!r})"
