"""The drift verdict: thresholds (:class:`DriftConfig`), the rules and :func:`detect_drift`.

A test flags drift only when its adjusted p < alpha AND its effect >= its threshold. The dataset
drifts when a critical column drifts or, by ``rule``, when any column drifts (default: the
correction already holds the family-wise error rate), when the drifted share reaches
``drift_share``, or when the drifted columns carry ``importance_share`` of the model's permutation
importance; below ``min_rows`` rows the answer is ``insufficient_data``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, get_args

from mlops_ops.config import DriftRule
from mlops_ops.core.drift.batch import _Batch
from mlops_ops.core.drift.profile import ReferenceProfile
from mlops_ops.core.drift.statistics import (
    CORRECTIONS,
    ColumnDrift,
    MissingDrift,
    _categorical_column,
    _numeric_column,
    adjust_p_values,
)
from mlops_ops.core.jsonsafe import json_safe

log = logging.getLogger("mlops_ops.core.drift")

STATUSES = ("drift", "no_drift", "insufficient_data")
#: How column verdicts make the dataset verdict: any drifted column, a share of the columns, or a
#: share of the model's permutation importance (see :class:`DriftConfig`).
RULES: tuple[str, ...] = get_args(DriftRule)


# --------------------------------------------------------------------------- configuration


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _names(field_name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"DriftConfig.{field_name} must be a list or tuple of column names, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"DriftConfig.{field_name} must hold non-empty strings, got {bad!r}")
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if list(value).count(v) > 1})
        raise ValueError(f"DriftConfig.{field_name} names a column twice: {dupes!r}")
    return tuple(value)


def _checked_by_spec(name: str, value: Any, expected: str) -> None:
    """Validate one verdict setting with the pipeline spec's field (``monitoring.drift.<name>``)."""
    from pydantic import ValidationError

    from mlops_ops.config import DriftSpec

    try:
        DriftSpec.model_validate({name: value}, strict=True)
    except ValidationError:
        raise ValueError(f"DriftConfig.{name} must be {expected}, got {value!r}") from None


def _weights(value: Any) -> tuple[tuple[str, float], ...]:
    """``{column: weight}`` or ``(column, weight)`` pairs -> sorted pairs of finite floats."""
    try:
        pairs = list(value.items()) if isinstance(value, Mapping) else [tuple(p) for p in value]
    except TypeError:
        pairs = None
    if pairs is None or any(len(p) != 2 for p in pairs):
        raise ValueError(f"DriftConfig.importance must map column names to numbers, got {value!r}")
    bad = [(k, w) for k, w in pairs if not isinstance(k, str) or not k or not _is_number(w)]
    if bad:
        raise ValueError(
            f"DriftConfig.importance must map column names to finite numbers; bad entries: {bad[:5]!r}"
        )
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise ValueError(f"DriftConfig.importance names a column twice: {twice!r}")
    return tuple(sorted((k, float(w)) for k, w in pairs))


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift test, validated when built.

    :param alpha: significance level after the multiple-testing correction, in (0, 1).
    :param delta: numeric effect threshold: Wasserstein-1 distance / reference std (for a constant
        reference column: the share of current values different from the constant).
    :param categorical_delta: categorical effect threshold: Jensen-Shannon distance (base 2), [0, 1].
    :param missing_delta: missing-rate effect threshold: absolute change of the rate, [0, 1].
    :param correction: ``"holm"`` (family-wise error) or ``"bh"`` (Benjamini-Hochberg, false
        discovery rate), applied once over every p-value of the batch.
    :param drift_share: with ``rule="share"``: the dataset drifts when at least this share of the
        checked columns drift, in (0, 1].
    :param critical_columns: any of these drifting means the dataset drifts (under every rule).
    :param min_rows: below this many rows the status is ``insufficient_data``, never ``drift``.
    :param columns: the profile columns to check (``None``: all of them).
    :param rule: how the column verdicts make the dataset verdict (see :data:`RULES`):
        ``"any"`` (default): one drifted column is a dataset drift; the correction already holds
        the family-wise error rate at ``alpha``, so no second threshold is needed to stay calm;
        ``"share"``: at least ``drift_share`` of the checked columns drifted;
        ``"importance"``: the drifted columns carry at least ``importance_share`` of the model's
        permutation importance (``importance``).
    :param importance_share: with ``rule="importance"``, in (0, 1].
    :param importance: column -> the champion's permutation importance (the drop of its metric
        when the column is shuffled); negative values count as 0 and unnamed columns weigh 0.
        Required by ``rule="importance"``. Stored as sorted ``(column, weight)`` pairs.
    """

    alpha: float = 0.01
    delta: float = 0.1
    categorical_delta: float = 0.05
    missing_delta: float = 0.05
    correction: str = "holm"
    drift_share: float = 0.3
    critical_columns: tuple[str, ...] = ()
    min_rows: int = 100
    columns: tuple[str, ...] | None = None
    rule: str = "any"
    importance_share: float = 0.2
    importance: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.alpha) or not 0 < self.alpha < 1:
            raise ValueError(f"DriftConfig.alpha must be a number in (0, 1), got {self.alpha!r}")
        if not _is_number(self.delta) or self.delta < 0:
            raise ValueError(f"DriftConfig.delta must be a finite number >= 0, got {self.delta!r}")
        for name in ("categorical_delta", "missing_delta"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"DriftConfig.{name} must be a number in [0, 1], got {value!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"DriftConfig.correction must be one of {list(CORRECTIONS)}, got {self.correction!r}"
            )
        # the verdict settings are validated by the pipeline spec's own fields: one definition
        _checked_by_spec("drift_share", self.drift_share, "a number in (0, 1]")
        _checked_by_spec("rule", self.rule, f"one of {list(RULES)}")
        _checked_by_spec("importance_share", self.importance_share, "a number in (0, 1]")
        if self.importance is not None:
            object.__setattr__(self, "importance", _weights(self.importance))
        elif self.rule == "importance":
            raise ValueError(
                "DriftConfig.rule 'importance' needs importance, the model's permutation importance "
                "per column (e.g. the champion's explain/permutation_importance.json)"
            )
        object.__setattr__(self, "critical_columns", _names("critical_columns", self.critical_columns))
        if not isinstance(self.min_rows, int) or isinstance(self.min_rows, bool) or self.min_rows < 1:
            raise ValueError(f"DriftConfig.min_rows must be an integer >= 1, got {self.min_rows!r}")
        if self.columns is not None:
            columns = _names("columns", self.columns)
            if not columns:
                raise ValueError("DriftConfig.columns must name at least one column, or be None for all")
            object.__setattr__(self, "columns", columns)
            outside = [c for c in self.critical_columns if c not in columns]
            if outside:
                raise ValueError(
                    f"DriftConfig.critical_columns {outside!r} are not among DriftConfig.columns {list(columns)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["critical_columns"] = list(self.critical_columns)
        doc["columns"] = None if self.columns is None else list(self.columns)
        doc["importance"] = None if self.importance is None else dict(self.importance)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DriftConfig:
        doc = dict(doc)
        doc["critical_columns"] = tuple(doc.get("critical_columns") or ())
        if doc.get("columns") is not None:
            doc["columns"] = tuple(doc["columns"])
        # documents written before the rule existed were judged by the share of drifted columns
        doc.setdefault("rule", "share")
        return cls(**doc)


DEFAULT_CONFIG = DriftConfig()


@dataclass
class DriftReport:
    """The drift verdict on one batch: per-column tests, the dataset status and why.

    ``status`` is ``"drift"``, ``"no_drift"`` or ``"insufficient_data"``; ``rows`` is the batch size,
    ``reference_rows`` the profile's; ``drifted_share`` = drifted columns / checked columns;
    ``family_size`` is the number of p-values in the multiple-testing correction;
    ``drifted_importance_share`` = the drifted columns' share of the positive permutation importance
    (None without importance weights).
    """

    status: str
    rows: int
    reference_rows: int
    columns: list[ColumnDrift]
    drifted_columns: list[str]
    drifted_share: float
    reasons: list[str]
    config: DriftConfig
    family_size: int = 0
    drifted_importance_share: float | None = None

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"no column {name!r} in this drift report; columns: {[c.name for c in self.columns]}")

    def summary(self) -> str:
        """One line for logs and asset events."""
        size = f"{self.rows:,} rows vs {self.reference_rows:,} reference rows"
        if self.status == "insufficient_data":
            return f"insufficient data: {size} (min_rows {self.config.min_rows:,})"
        checked = len(self.columns)
        names = ", ".join(self.drifted_columns[:5]) + (", ..." if len(self.drifted_columns) > 5 else "")
        which = f" ({names})" if names else ""
        label = "drift" if self.status == "drift" else "no drift"
        return f"{label}: {len(self.drifted_columns)} of {checked} columns drifted{which}; {size}"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json_safe(
            {
                "status": self.status,
                "drifted": self.drifted,
                "rows": self.rows,
                "reference_rows": self.reference_rows,
                "drifted_columns": list(self.drifted_columns),
                "drifted_share": self.drifted_share,
                "family_size": self.family_size,
                "rule": self.config.rule,
                "drifted_importance_share": self.drifted_importance_share,
                "reasons": list(self.reasons),
                "config": self.config.to_dict(),
                "columns": [c.to_dict() for c in self.columns],
            }
        )
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DriftReport:
        if doc.get("status") not in STATUSES:
            raise ValueError(
                f"drift report status must be one of {list(STATUSES)}, got {doc.get('status')!r}"
            )
        return cls(
            status=doc["status"],
            rows=int(doc["rows"]),
            reference_rows=int(doc["reference_rows"]),
            columns=[ColumnDrift.from_dict(c) for c in doc["columns"]],
            drifted_columns=list(doc["drifted_columns"]),
            drifted_share=float(doc["drifted_share"]),
            reasons=list(doc["reasons"]),
            config=DriftConfig.from_dict(doc["config"]),
            family_size=int(doc.get("family_size", 0)),
            drifted_importance_share=doc.get("drifted_importance_share"),
        )

    def with_config(self, config: DriftConfig) -> DriftReport:
        """The verdict under other thresholds, from the stored statistics (no data is read again).

        Equal to running :func:`detect_drift` again with ``config`` on the same batch. ``columns``
        may only narrow the columns of this report (``None`` keeps all of them).
        """
        present = [c.name for c in self.columns]
        if config.columns is not None:
            unknown = [c for c in config.columns if c not in present]
            if unknown:
                raise ValueError(f"columns {unknown!r} are not in this drift report; it has {present!r}")
        keep = present if config.columns is None else [c for c in present if c in config.columns]
        columns = [replace(c, missing=replace(c.missing)) for c in self.columns if c.name in keep]
        return _judge(columns, self.rows, self.reference_rows, config)


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _column_reasons(col: ColumnDrift, config: DriftConfig) -> list[str]:
    reasons = []
    if col.distribution_drifted:
        if col.kind == "numeric":
            effect = "share of values off the constant" if col.note else "Wasserstein/std"
            text = (
                f"{col.name!r}: KS D={_g(col.statistic)} (adjusted p={col.p_adjusted:.2g} < alpha "
                f"{config.alpha:g}), {effect} {_g(col.effect)} >= delta {config.delta:g}"
            )
        else:
            text = (
                f"{col.name!r}: chi-square {_g(col.statistic)} (adjusted p={col.p_adjusted:.2g} < alpha "
                f"{config.alpha:g}), Jensen-Shannon distance {_g(col.effect)} >= categorical_delta "
                f"{config.categorical_delta:g}"
            )
            if col.unseen_share:
                text += f"; {col.unseen_share:.1%} of values in categories the reference does not name"
        reasons.append(text)
    if col.missing.drifted:
        m = col.missing
        reasons.append(
            f"{col.name!r}: missing rate {m.reference_rate:.2%} -> {m.current_rate:.2%} (z={_g(m.statistic)}, "
            f"adjusted p={m.p_adjusted:.2g} < alpha {config.alpha:g}), change {m.effect:.3g} >= "
            f"missing_delta {config.missing_delta:g}"
        )
    return reasons


def _judge(columns: list[ColumnDrift], rows: int, reference_rows: int, config: DriftConfig) -> DriftReport:
    """Thresholds, one multiple-testing correction over the batch, column and dataset verdicts."""
    names = [c.name for c in columns]
    unknown = [c for c in config.critical_columns if c not in names]
    if unknown:
        raise ValueError(f"critical columns {unknown!r} are not among the checked columns {names!r}")
    family: list[tuple[ColumnDrift | MissingDrift, float]] = []
    for col in columns:
        col.effect_threshold = config.delta if col.kind == "numeric" else config.categorical_delta
        col.missing.effect_threshold = config.missing_delta
        col.p_adjusted = 1.0
        col.missing.p_adjusted = 1.0
        if col.tested:
            family.append((col, col.p_value))
        if col.missing.tested:
            family.append((col.missing, col.missing.p_value))
    adjusted = adjust_p_values([p for _, p in family], config.correction)
    for (test, _), value in zip(family, adjusted, strict=True):
        test.p_adjusted = value
    enough = rows >= config.min_rows
    for col in columns:
        col.distribution_drifted = bool(
            enough
            and col.tested
            and col.effect is not None
            and col.p_adjusted < config.alpha
            and col.effect >= col.effect_threshold
        )
        m = col.missing
        m.drifted = bool(
            enough and m.tested and m.p_adjusted < config.alpha and m.effect >= m.effect_threshold
        )
        col.drifted = col.distribution_drifted or m.drifted
    drifted = [c.name for c in columns if c.drifted]
    share = len(drifted) / len(columns) if columns else 0.0
    critical = [c for c in config.critical_columns if c in drifted]
    importance = _importance_share(columns, drifted, config)
    reasons: list[str] = []
    if not enough:
        status = "insufficient_data"
        reasons.append(
            f"the batch has {rows:,} rows, fewer than min_rows {config.min_rows:,}: drift is not judged"
        )
    else:
        met, rule_reason = _dataset_rule(columns, drifted, share, importance, config)
        status = "drift" if critical or met else "no_drift"
        if drifted:
            reasons.append(rule_reason)
            if critical:
                reasons.append(f"critical column(s) drifted: {', '.join(critical)}")
            elif config.critical_columns:
                reasons.append("no critical column drifted")
            for col in columns:
                reasons.extend(_column_reasons(col, config))
        else:
            reasons.append(f"none of {len(columns)} columns drifted")
        quiet = [
            c.name
            for c in columns
            if not c.drifted
            and (
                (c.tested and c.p_adjusted < config.alpha)
                or (c.missing.tested and c.missing.p_adjusted < config.alpha)
            )
        ]
        if quiet:
            reasons.append(
                f"{len(quiet)} column(s) differ significantly but by less than the effect threshold: "
                + ", ".join(quiet[:10])
                + (", ..." if len(quiet) > 10 else "")
            )
    return DriftReport(
        status=status,
        rows=int(rows),
        reference_rows=int(reference_rows),
        columns=columns,
        drifted_columns=drifted,
        drifted_share=share,
        reasons=reasons,
        config=config,
        family_size=len(family),
        drifted_importance_share=importance,
    )


def _importance_share(columns: list[ColumnDrift], drifted: list[str], config: DriftConfig) -> float | None:
    """The drifted columns' share of the positive importance of the checked columns, or None
    when no importance is given or no checked column has a positive importance."""
    if config.importance is None:
        return None
    weights = dict(config.importance)
    total = sum(max(weights.get(c.name, 0.0), 0.0) for c in columns)
    if total <= 0:
        return None
    return sum(max(weights.get(name, 0.0), 0.0) for name in drifted) / total


def _dataset_rule(
    columns: list[ColumnDrift],
    drifted: list[str],
    share: float,
    importance: float | None,
    config: DriftConfig,
) -> tuple[bool, str]:
    """Whether the drifted columns make a dataset drift under ``config.rule``, and the sentence why."""
    counted = f"{len(drifted)} of {len(columns)} columns drifted"
    if config.rule == "share":
        sign = ">=" if share >= config.drift_share else "<"
        return bool(drifted) and share >= config.drift_share, (
            f"{counted} ({share:.1%} {sign} drift_share {config.drift_share:.1%})"
        )
    if config.rule == "importance":
        if importance is None:
            return bool(drifted), (
                f"{counted}; no checked column has a positive permutation importance, so the rule "
                "'importance' cannot weigh them: judged by the rule 'any' (one drifted column is a "
                "dataset drift)"
            )
        sign = ">=" if importance >= config.importance_share else "<"
        return bool(drifted) and importance >= config.importance_share, (
            f"{counted}, holding {importance:.1%} of the model's permutation importance ({sign} "
            f"importance_share {config.importance_share:.1%})"
        )
    return bool(drifted), f"{counted} (rule 'any': one drifted column is a dataset drift)"


def detect_drift(profile: ReferenceProfile, data: Any, config: DriftConfig = DEFAULT_CONFIG) -> DriftReport:
    """Test a batch against the reference profile, column by column, then as a dataset.

    :param profile: the reference profile (the champion's training data).
    :param data: a pandas DataFrame, a pyarrow Table, a path to a Parquet file or an open
        ``pyarrow.parquet.ParquetFile``. Parquet is read one column at a time.
    :param config: thresholds; see :class:`DriftConfig`.
    :raises ValueError: a profile column is missing from the data, or the config names columns
        the profile does not have.
    """
    if not isinstance(profile, ReferenceProfile):
        raise TypeError(f"profile must be a ReferenceProfile, got {type(profile).__name__}")
    if not isinstance(config, DriftConfig):
        raise TypeError(f"config must be a DriftConfig, got {type(config).__name__}")
    available = list(dict.fromkeys(profile.columns))
    if config.columns is not None:
        unknown = [c for c in config.columns if c not in available]
        if unknown:
            raise ValueError(
                f"DriftConfig.columns {unknown!r} are not in the reference profile; it has {available!r}"
            )
    wanted = [c for c in available if config.columns is None or c in config.columns]
    outside = [c for c in config.critical_columns if c not in wanted]
    if outside:
        raise ValueError(
            f"DriftConfig.critical_columns {outside!r} are not in the reference profile; it has {available!r}"
        )
    batch = _Batch(data)
    try:
        batch.check(wanted)
        columns = []
        for name in wanted:
            values = batch.column(name)
            if name in profile.numeric:
                columns.append(_numeric_column(name, profile.numeric[name], values))
            else:
                columns.append(_categorical_column(name, profile.categorical[name], values))
            del values
    finally:
        batch.close()
    report = _judge(columns, batch.rows, profile.rows, config)
    if log.isEnabledFor(logging.DEBUG):
        for col in report.columns:
            log.debug(
                "drift %s %s=%s adjusted p=%.3g (alpha %g) effect=%s (threshold %g); missing %.4f -> %.4f "
                "adjusted p=%.3g (threshold %g); drifted=%s",
                col.name,
                col.test,
                _g(col.statistic),
                col.p_adjusted,
                config.alpha,
                _g(col.effect),
                col.effect_threshold,
                col.missing.reference_rate,
                col.missing.current_rate,
                col.missing.p_adjusted,
                config.missing_delta,
                col.drifted,
            )
    log.info("%s", report.summary())
    return report
