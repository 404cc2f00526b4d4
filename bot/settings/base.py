"""The settings' common ground: the section base class, the deprecation warning and the value checks
every section uses (values quoted in messages are cut, so a 10 MB bad value still gives a short line).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
import typing
import warnings
from collections.abc import Iterator
from pathlib import PurePath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from bot import expressions
from bot.untrusted import has_controls, shown


class DeprecatedKey(FutureWarning):
    """A config key that still works under its earlier spelling; the message names the new one."""


class Section(BaseModel):
    """A settings section: unknown keys refused, frozen, each field's docstring its schema description
    (``described``)."""

    # Not use_attribute_docstrings: pydantic then reads and parses every section's source as the class is made,
    # about 110 ms of every run's start (a quarter of a one-user run). Only the JSON schema shows the docstrings.
    model_config = ConfigDict(extra="forbid", frozen=True)


def described(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with each field's docstring as its description, in it and in every section it nests (what
    pydantic's ``use_attribute_docstrings`` does as a class is made), for its JSON schema; returns ``model``.

    The sections' schemas are made again, the nested ones first. An explicit ``description`` is kept."""
    for section in _nested(model, set()):
        docs: dict[str, str] = {}
        for klass in reversed(section.__mro__[: section.__mro__.index(BaseModel)]):
            docs |= _attribute_docstrings(klass)
        for name, field in section.model_fields.items():
            if field.description is None and name in docs:
                field.description = docs[name]
        section.model_rebuild(force=True)
    return model


def _nested(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    """``model`` and the models its fields hold (in tuples, dicts, unions), each once, the innermost first."""
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            yield from _nested(inner, seen)
    yield model


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _attribute_docstrings(klass: type) -> dict[str, str]:
    """The string literal after each annotated attribute in ``klass``'s own body, cleaned as docstrings are."""
    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):  # no source (a frozen or generated class): no descriptions
        return {}
    body = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body.body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def valid_expression(text: str | None) -> str | None:
    """``text`` unchanged when it is a valid JMESPath expression (or None); else a ValueError saying why."""
    if text is not None and (problem := expressions.expression_problem(text)) is not None:
        raise ValueError(f"{text!r} is not a valid JMESPath expression: {problem}")
    return text


UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")
HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: what a subprotocol may be


def valid_path(value: str) -> str:
    """A URL path as given: starting with '/', without spaces or control characters."""
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {shown(value)}")
    if UNSAFE_IN_URL.search(value):
        raise ValueError(
            f"expected a path without spaces or control characters (CR, LF, ...), got {shown(value)}"
        )
    return value


def local_path(value: Any) -> Any:
    """A file or directory path as given (str or Path); one with a NUL, a line break or another control
    character is refused (the OS refuses NUL later with a crash; the others are a mistake or an attack)."""
    if isinstance(value, str | PurePath) and has_controls(str(value)):
        raise ValueError(
            f"expected a path without control characters (NUL, CR, LF, ESC, ...), got {shown(str(value))}"
        )
    return value


def header_templates(headers: dict[str, str]) -> dict[str, str]:
    """Extra HTTP headers as given: names are HTTP tokens, values one line of text."""
    for name, value in headers.items():
        if not HTTP_TOKEN.fullmatch(name):
            raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(name)}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name}: expected one line of text, got {shown(value)}")
    return headers


def deprecated(old: str, new: str) -> None:
    """Warn that config key ``old`` still works but is spelled ``new`` now."""
    warnings.warn(f"config key {old} is deprecated: write {new} instead", DeprecatedKey, stacklevel=2)


UrlPath = Annotated[str, AfterValidator(valid_path)]
"""A path on the target's host (``valid_path``), checked wherever a section names one."""
HeaderTemplates = Annotated[dict[str, str], AfterValidator(header_templates)]
"""Request headers whose values are templates (``header_templates``)."""
