"""Loading a pipeline spec: strict YAML (UTF-8 only, no duplicate keys), validation, error messages,
the spec files of a folder and the JSON schema."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from mlops_ops.config.errors import FieldError, SpecError
from mlops_ops.config.pipeline import PipelineSpec


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or got is None or repr(got) in msg else f" (got {got!r})"
        error = (e.get("ctx") or {}).get("error")
        if isinstance(error, FieldError):
            loc = ".".join(filter(None, [".".join(str(p) for p in e["loc"]), error.field]))
            msg = str(error)
        lines.append(f"  - {loc}: {msg}{shown}")
    return "\n".join(lines)


def _non_finite(data: Any, where: str = "", seen: set[int] | None = None) -> list[str]:
    """Paths (``model.params.C``) of every NaN or infinite float in a loaded document.

    A mapping or list shared through YAML aliases is walked once (aliases can nest exponentially).
    """
    if isinstance(data, float):
        return [] if math.isfinite(data) else [where or "(top level)"]
    if not isinstance(data, dict | list | tuple):
        return []
    seen = set() if seen is None else seen
    if id(data) in seen:
        return []
    seen.add(id(data))
    items = data.items() if isinstance(data, dict) else enumerate(data)
    found: list[str] = []
    for key, value in items:
        found += _non_finite(value, f"{where}.{key}" if where else str(key), seen)
    return found


def parse_pipeline_spec(data: Any, *, origin: str = "<spec>") -> PipelineSpec:
    """Validate an already-loaded mapping. Raises :class:`SpecError` naming every bad field.

    NaN and infinite numbers are refused anywhere in the spec, also inside free-form mappings
    (``model.params``, expectation ``kwargs``): a NaN compares false with everything, so a NaN
    threshold would silently switch its check off.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a pipeline spec must be a YAML mapping, got {type(data).__name__}")
    bad = _non_finite(data)
    if bad:
        lines = "\n".join(
            f"  - {where}: NaN and infinite numbers are not allowed; give a finite number" for where in bad
        )
        raise SpecError(f"{origin}: invalid pipeline spec\n{lines}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{origin}: invalid pipeline spec\n{_format_errors(err)}") from None


def _strict_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (at any depth).

    PyYAML keeps the last of two equal keys: a duplicated ``seed`` or a second, stricter
    ``thresholds`` block would silently replace the first. Merge keys (``<<: *base``) still
    override as YAML specifies.
    """
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictSafeLoader(base):  # type: ignore[valid-type,misc]
        def construct_yaml_timestamp(self, node: Any) -> Any:
            # PyYAML raises a bare ValueError, with no position, for a date like 2026-02-30
            try:
                return super().construct_yaml_timestamp(node)
            except ValueError as err:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{node.value!r} is not a valid date or time: {err}", node.start_mark
                ) from None

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        if key in seen:
                            raise DuplicateKeyError(key, line, seen[key])
                        seen[key] = line
                    except TypeError:  # an unhashable key: the constructor reports it below
                        continue
            return super().construct_mapping(node, deep=deep)

    StrictSafeLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictSafeLoader.construct_yaml_timestamp)
    return StrictSafeLoader


class DuplicateKeyError(SpecError):
    """A YAML mapping gives the same key twice (``line`` and ``first_line`` are 1-based)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(
            f"line {line}: duplicate key {key!r} (first given at line {first_line}); "
            "YAML would silently keep only the last one: remove one of them"
        )
        self.key, self.line, self.first_line = key, line, first_line


def read_spec_document(path: str | Path) -> Any:
    """The YAML document of a spec file, read strictly: UTF-8 only, no duplicate keys.

    Every spec is read through this function (``mlops-ops check``, the DAG factory).

    :raises SpecError: naming the file and, for a bad byte, its offset and line; for a
        duplicate key, its line and the key.
    """
    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(f"{path}: cannot read the pipeline spec: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError(
            f"{path}: not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) "
            f"cannot be decoded ({err.reason}); save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not content
    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise SpecError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as err:  # a constructor's own error, no position
        raise SpecError(f"{path}: not valid YAML: {type(err).__name__}: {err}") from None


def _field_lines(path: Path) -> dict[str, int]:
    """The 1-based line of every field of a spec file, by its dotted path (``model.seed``,
    ``evaluation.slices.0.min_rows``); {} when the file cannot be composed."""
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8").removeprefix("\ufeff"))
    except (yaml.YAMLError, OSError, ValueError, RecursionError):
        return {}
    lines: dict[str, int] = {}

    def walk(node: Any, where: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{where}.{key.value}" if where else str(key.value)
                lines.setdefault(name, key.start_mark.line + 1)
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                name = f"{where}.{index}" if where else str(index)
                lines.setdefault(name, item.start_mark.line + 1)
                walk(item, name)

    walk(root, "")
    return lines


def _with_lines(message: str, lines: dict[str, int]) -> str:
    """Each ``  - field: problem`` line of a spec error, ending with the field's line in the file."""
    out = []
    for text in message.splitlines():
        if text.startswith("  - ") and ": " in text:
            field = text[4:].split(": ", 1)[0]
            while field and field not in lines and "." in field:
                field = field.rsplit(".", 1)[0]  # a field the file leaves out: its section's line
            if field in lines:
                text = f"{text} [line {lines[field]}]"
        out.append(text)
    return "\n".join(out)


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Load and validate one pipeline spec from a YAML file (see :func:`read_spec_document`).

    :raises SpecError: naming the file, and for each bad field its dotted path, what was expected
        and the field's line in the file (``[line N]``).
    """
    path = Path(path)
    document = read_spec_document(path)
    try:
        spec = parse_pipeline_spec(document, origin=str(path))
    except SpecError as err:
        raise SpecError(_with_lines(str(err), _field_lines(path))) from None
    if spec.name != path.stem:
        raise SpecError(f"{path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec


def spec_files(folder: str | Path) -> list[Path]:
    """The pipeline spec files of a folder (``*.yaml`` and ``*.yml``), sorted."""
    return sorted(p for p in Path(folder).glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def pipeline_json_schema() -> dict[str, Any]:
    """JSON schema of a pipeline spec, for editors (``mlops-ops schema``)."""
    return PipelineSpec.model_json_schema()
