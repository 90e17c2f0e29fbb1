"""Constrained scalar types shared by the spec models.

Each type validates one thing people get wrong (a node id CEL cannot address, an import
path without a function, a negative timeout) so the message names it at the field.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue

from keel.spec.durations import spec_duration
from keel.spec.expressions import CEL_RESERVED, normalize

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMPORT_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"
)


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid id: use letters, digits and '_', not starting with a "
            "digit, so expressions can refer to it as nodes.<id>"
        )
    if value in CEL_RESERVED:
        raise ValueError(f"{value!r} is a reserved word of the expression language")
    return value


def _check_import_path(value: str) -> str:
    if not _IMPORT_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not an import path: write 'package.module:function'")
    return value


def _check_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}", value):
        raise ValueError(
            f"{value!r} is not a valid name: start with a letter or '_', then letters, "
            "digits, '_', '.', '-' (at most 200 characters)"
        )
    return value


def _finite(value: object) -> object:
    """Refuse NaN and infinities anywhere inside a JSON value: JSON cannot hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} cannot be stored as JSON: use a finite number or null")
    if isinstance(value, dict):
        for item in value.values():
            _finite(item)
    elif isinstance(value, list):
        for item in value:
            _finite(item)
    return value


#: any JSON value, without NaN or infinities
JsonData = Annotated[JsonValue, AfterValidator(_finite)]
NodeId = Annotated[str, AfterValidator(_check_identifier)]
ImportPath = Annotated[str, AfterValidator(_check_import_path)]
Name = Annotated[str, AfterValidator(_check_name)]
#: CEL source; whitespace outside strings is normalised. Syntax is checked by validation,
#: not here, so that one bad expression does not hide every other problem of a spec.
Expression = Annotated[str, AfterValidator(normalize)]
#: seconds; written as ``"30s"``, ``"5m"``, ``"PT1H"`` or a number; at most 365 days
PositiveDuration = Annotated[float, BeforeValidator(spec_duration), Field(gt=0)]
NonNegativeDuration = Annotated[float, BeforeValidator(spec_duration), Field(ge=0)]
