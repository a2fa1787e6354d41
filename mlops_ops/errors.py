"""The exceptions of mlops-ops, in one hierarchy, and how a failure is classified.

Two kinds of failure, and the operators treat them differently:

* **Verdicts** (:class:`MlopsError` subclasses that are also ``ValueError``): the input, a spec or
  a stored document is wrong. No retry can change that, so the task fails once
  (``AirflowFailException``) with a message that names the file and the fix.
* **Transient faults** (:class:`TransientError`, and anything that is not a verdict: network
  errors, an MLflow server that does not answer, storage that times out): they propagate, so
  Airflow's retries apply.

This module is pure: no Airflow, no heavy imports. The operators map verdicts to Airflow in one
place (``MlopsBaseOperator.execute_verdicts``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class MlopsError(Exception):
    """Base of every mlops-ops error."""


class DataError(MlopsError, ValueError):
    """Input data is unusable. The message names the problem and how to fix it."""


class SpecError(MlopsError, ValueError):
    """A pipeline spec or an operator setting is invalid. The message names the file and field."""


class SnapshotIntegrityError(DataError):
    """A stored snapshot's bytes no longer match what ingest wrote (tampering, bit rot, a partial copy).

    Never read past: such a snapshot is not trained on, gated on, scored or reused. Re-ingest the
    source to write it again.
    """


class StoredDocumentError(MlopsError, ValueError):
    """A stored document (manifest, MLflow artifact, ledger record) exists but cannot be read."""


class ModelError(MlopsError, ValueError):
    """A model version cannot do what the pipeline needs (e.g. an estimator that cannot predict)."""


class ConditionalWriteUnsupportedError(MlopsError, NotImplementedError):
    """The storage cannot create a file only if its name is free (no conditional writes).

    The deployment ledger's claims need that guarantee, so promotions refuse to run on such
    storage. Not a retryable fault: the operators fail the task with the message (which names the
    storage and what to use instead).
    """


class TransientError(MlopsError, RuntimeError):
    """A service did not answer. Not a verdict: Airflow's retries apply."""


class MlflowUnavailableError(TransientError):
    """The MLflow tracking server did not answer. Not a verdict: Airflow's retries apply."""


#: What parsing a stored file's bytes, already in memory, raises when the file is damaged
#: (Unicode and JSON errors, pyarrow's ArrowInvalid are ValueErrors; pyarrow raises OSError for
#: a corrupt Parquet footer; JSON nested deeper than the parser's recursion limit raises
#: RecursionError). Never use it around I/O: there an OSError is a storage fault.
DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    UnicodeDecodeError,
    json.JSONDecodeError,
    ValueError,
    OSError,
    RecursionError,
)


#: MLflow error codes (``MlflowException.error_code``) of a request the server refused as invalid:
#: sending it again gets the same answer (a name or value over MLflow's limits, a malformed request)
MLFLOW_VERDICT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"})


def is_verdict(err: BaseException) -> bool:
    """True when no retry can change ``err``.

    * a ``ValueError`` that is not a transient error, except a JSON decoding error that is also an
      ``OSError``: that is a reply read over the network (``requests``' ``JSONDecodeError``, e.g. a
      proxy's HTML error page), which the next attempt may get right;
    * an MLflow error whose ``error_code`` is in :data:`MLFLOW_VERDICT_CODES` (checked by
      attribute: this module imports no MLflow).
    """
    if isinstance(err, TransientError):
        return False
    if isinstance(err, json.JSONDecodeError) and isinstance(err, OSError):
        return False
    if isinstance(err, ValueError):
        return True
    is_mlflow = any(cls.__name__ == "MlflowException" for cls in type(err).__mro__)
    return is_mlflow and str(getattr(err, "error_code", "")) in MLFLOW_VERDICT_CODES


def damaged(
    what: str, err: BaseException, fix: str, cls: type[MlopsError] = StoredDocumentError
) -> MlopsError:
    """A verdict naming a damaged stored file ``what``, its cause ``err`` and the ``fix``.

    :param what: the file, e.g. ``"manifest.json of snapshot 3f2a… (file:///…)"``.
    :param err: the exception the reader raised (its type and message are kept).
    :param fix: what the user should do, e.g. ``"re-ingest the source"``.
    :param cls: the error class to build (default :class:`StoredDocumentError`).
    """
    return cls(f"{what} is damaged or unreadable ({type(err).__name__}: {str(err)[:300]}); {fix}")


def parse_stored(what: str, parse: Callable[[Any], T], document: Any, fix: str) -> T:
    """``parse(document)``, where a malformed stored document is a verdict naming it and the fix.

    For documents already read (no I/O inside ``parse``): a missing key, a wrong type or value is
    the document's fault, and no retry can change it.

    :raises StoredDocumentError: ``parse`` raised ``KeyError``, ``TypeError``, ``ValueError``,
        ``AttributeError``, ``IndexError`` or ``RecursionError`` (a document nested too deep).
    """
    try:
        return parse(document)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as err:
        raise damaged(what, err, fix) from None
