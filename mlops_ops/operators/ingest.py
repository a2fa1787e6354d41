"""IngestDatasetOperator: source -> content-addressed, write-once snapshot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import dataset_asset
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: age after which a temporary data file in ``snapshots/`` counts as a killed ingest's
_STALE_STAGING_SECONDS = 6 * 3600.0


class IngestDatasetOperator(MlopsBaseOperator):
    """Read a source and store it as a snapshot: ``snapshots/<sha256>/data.parquet + manifest.json``.

    The source is streamed: read in batches, each brought to the snapshot's storage types,
    written as Parquet row groups to a temporary file and hashed on the way, so memory does not
    grow with the source (docs/architecture.md, "Ingestion"). The snapshot is named by the hash of
    its normalised content, so re-running the task on the same data returns the same snapshot and
    changes nothing in storage (the temporary file is deleted). The data file is moved into place
    before the manifest is written: a snapshot without a manifest does not exist for readers.

    Give either ``source_uri`` (files) or ``sql`` with ``conn_id`` (a query).

    :param source_uri: file, directory or glob URI (templated), e.g.
        ``s3://bucket/sales/{{ ds }}/*.parquet``; ``${VARS}`` expand from the worker's environment.
    :param source_format: ``auto`` (from the extension), ``csv`` or ``parquet``.
    :param source_conn_id: Airflow connection with credentials for the source's object store.
    :param sql: query to run (templated); pass values through ``parameters``, never by formatting.
    :param conn_id: Airflow connection the query runs on (any DbApiHook: Postgres, SQLite, ...).
    :param parameters: bound query parameters (templated).
    :param prediction_log: read the online service's prediction log instead: the rows it answered
        in the run's data interval, one per answered row (docs/serving.md). No rows: skipped.
    :param min_rows: fewer rows than this fails the task.
    :param skip_when_empty: no file matches, or the source has no row: the task is skipped (with
        the reason) instead of failing; for sources that may have nothing on a day (outcomes).
    :param window_days: read only the files whose path carries a date in the last ``window_days``
        days up to ``window_end`` (a rolling training window over dated partitions).
    :param window_date_format: strftime format of the date in the partition paths.
    :param csv_options: how CSV files are read (``source.csv``): ``sep``, ``decimal``,
        ``encoding``, ``quotechar``, ``na_values``, ``keep_default_na``, ``thousands``.
    :param window_end: last day of the window, ``YYYY-MM-DD`` (templated); default: the run's
        logical date, or the day the run was queued when it has none (asset-triggered runs).
    """

    template_fields: Sequence[str] = ("source_uri", "sql", "parameters", "window_end")
    template_fields_renderers = {"sql": "sql", "parameters": "json"}

    def __init__(
        self,
        *,
        source_uri: str | None = None,
        source_format: str = "auto",
        source_conn_id: str | None = None,
        sql: str | None = None,
        conn_id: str | None = None,
        parameters: dict[str, Any] | None = None,
        prediction_log: bool = False,
        min_rows: int = 1,
        skip_when_empty: bool = False,
        window_days: int | None = None,
        window_date_format: str = "%Y-%m-%d",
        window_end: str | None = None,
        csv_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [dataset_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.window_days = window_days
        self.window_date_format = window_date_format
        self.window_end = window_end
        self.source_uri = source_uri
        self.source_format = source_format
        self.source_conn_id = source_conn_id
        self.sql = sql
        self.conn_id = conn_id
        self.parameters = parameters
        self.prediction_log = prediction_log
        self.min_rows = min_rows
        self.skip_when_empty = skip_when_empty
        self.csv_options = csv_options

    def execute(self, context: Context) -> dict[str, Any]:
        # not through core.data: the Parquet path does not import pandas (benchmarks/ingest)
        from mlops_ops.errors import DataError

        try:
            batches, source = self._open_source(context)
            return self._store(context, batches, source)
        except DataError as err:
            raise AirflowFailException(f"ingest of pipeline {self.pipeline!r} failed: {err}") from None

    def _open_source(self, context: Context) -> tuple[Any, dict[str, Any]]:
        """The source as a function of a :class:`~mlops_ops.core.ingest_stream.Plan` yielding
        record batches (called again when a batch widens a column), and its lineage record."""
        if self.prediction_log:
            if self.source_uri or self.sql:
                raise AirflowFailException(
                    "prediction_log reads the service's log: give no source_uri or sql"
                )
            return self._prediction_log_batches(context)
        if bool(self.source_uri) == bool(self.sql):
            raise AirflowFailException("give exactly one of source_uri or sql (with conn_id)")
        if self.sql:
            return self._query_batches()
        return self._file_batches(context)

    def _query_batches(self) -> tuple[Any, dict[str, Any]]:
        """The query's result fetched through a cursor in chunks of ``BATCH_ROWS`` rows."""
        from mlops_ops.core import ingest_stream

        if not self.conn_id:
            raise AirflowFailException("sql needs conn_id: the Airflow connection to run the query on")
        from airflow.sdk import BaseHook

        db_hook = BaseHook.get_connection(self.conn_id).get_hook()
        if not hasattr(db_hook, "get_df"):
            raise AirflowFailException(f"connection {self.conn_id!r} has no SQL hook (DbApiHook)")
        sql, parameters, conn_id = self.sql, self.parameters or None, self.conn_id

        def batches(plan: Any) -> Any:
            if hasattr(db_hook, "get_df_by_chunks"):
                frames = db_hook.get_df_by_chunks(
                    sql, parameters=parameters, chunksize=ingest_stream.BATCH_ROWS
                )
            else:  # a hook without chunked reads: one frame
                frames = iter([db_hook.get_df(sql, parameters=parameters)])
            yield from ingest_stream.frame_batches(f"the query on {conn_id}", frames)

        source = {
            "kind": "sql",
            "conn_id": self.conn_id,
            "sql": self.sql,
            "parameters": self.parameters or {},
        }
        return batches, source

    def _prediction_log_batches(self, context: Context) -> tuple[Any, dict[str, Any]]:
        """The request rows the online service answered in the run's data interval (the last day
        before the run for a run without one), as logged: one row per answered row."""
        import datetime as dt

        from mlops_ops.core import ingest_stream
        from mlops_ops.serving.prediction_log import served_inputs

        start: Any = context.get("data_interval_start")
        end: Any = context.get("data_interval_end")
        if start is None or end is None or start >= end:
            end = context.get("logical_date") or context["dag_run"].run_after
            start = end - dt.timedelta(days=1)
        frame = served_inputs(self.storage, start, end)
        where = str(self.storage.prediction_log_dir())
        if frame.empty:
            self.skip(f"the prediction log {where} has no answered rows in [{start}, {end})")
        self.log.info("prediction log: %d answered row(s) in [%s, %s)", len(frame), start, end)

        def batches(plan: Any) -> Any:
            yield from ingest_stream.frame_batches(where, iter([frame]))

        source = {"kind": "prediction_log", "uri": where, "start": start.isoformat(), "end": end.isoformat()}
        return batches, source

    def _file_batches(self, context: Context) -> tuple[Any, dict[str, Any]]:
        """The files under ``source_uri`` (within the window, if any), read in batches in order."""
        from mlops_ops.core import formats, ingest_stream, partitions
        from mlops_ops.errors import DataError
        from mlops_ops.hooks.credentials import mask_credentials
        from mlops_ops.hooks.storage import expand_source, open_file
        from mlops_ops.url_credentials import without_credentials

        full_uri = os.path.expandvars(str(self.source_uri))
        mask_credentials(full_uri)  # a password written in the URL (e.g. from ${VAR}) never logged
        uri = without_credentials(full_uri)  # what messages, the manifest and XCom show
        files = expand_source(full_uri, self.source_conn_id)
        if not files and self.skip_when_empty:
            self.skip(f"no file matches {uri}: nothing arrived for this run")
        if not files:
            raise DataError(
                f"no file matches {uri}; check the path and that the upstream export for this date has run"
            )
        window = None
        if self.window_days:
            end = self._window_end(context)
            by_name = {str(f): f for f in files}
            chosen = partitions.select_window(
                list(by_name), end=end, days=int(self.window_days), date_format=self.window_date_format
            )
            window = {"days": int(self.window_days), "end": end.isoformat(), "files": len(chosen)}
            self.log.info(
                "window: %d of %d partition(s) in the %d day(s) up to %s",
                len(chosen),
                len(files),
                self.window_days,
                end,
            )
            if not chosen:
                raise DataError(
                    f"no partition of {uri} is dated within the {self.window_days} day(s) up to {end}; "
                    "check that the daily exports have run or widen source.window.days"
                )
            files = [by_name[p] for p in chosen]
        kinds = [formats.detect_format(f.name, self.source_format) for f in files]
        csv_options = self.csv_options

        def batches(plan: Any) -> Any:
            for f, fmt in zip(files, kinds, strict=True):
                with open_file(f, "rb") as fh:
                    if fmt == "parquet":
                        yield from ingest_stream.parquet_batches(str(f), fh)
                    else:
                        yield from ingest_stream.csv_batches(str(f), fh, csv_options, plan)

        self.log.info("reading %d file(s) from %s", len(files), uri)
        return batches, {
            "kind": "files",
            "uri": uri,
            "files": [without_credentials(str(f)) for f in files][:100],
            "n_files": len(files),
            **({"window": window} if window else {}),
        }

    def _window_end(self, context: Context) -> Any:
        import datetime as dt

        if self.window_end:
            try:
                return dt.date.fromisoformat(str(self.window_end)[:10])
            except ValueError:
                raise AirflowFailException(
                    f"window_end must be a date like 2026-01-31, got {self.window_end!r}"
                ) from None
        when = context.get("logical_date") or context["dag_run"].run_after
        return when.date()

    def _store(self, context: Context, batches: Any, source: dict[str, Any]) -> dict[str, Any]:
        """Stream the source into a temporary file, then name it by its content hash.

        The data file is written once, to ``snapshots/data.parquet.tmp-<uuid>``, while its content
        hash is computed; it then moves to ``snapshots/<sha256>/data.parquet`` and the manifest is
        written (write-once) after it. If that snapshot already exists and verifies, the temporary
        file is deleted and nothing changes. A failure at any point deletes the temporary file.
        """
        from mlops_ops.core import ingest_stream
        from mlops_ops.core import snapshot as snap
        from mlops_ops.errors import DataError
        from mlops_ops.hooks.storage import open_file, remove_temporaries, staged_file

        snapshots = self.storage.snapshots_dir()
        stale = remove_temporaries(snapshots, older_than_seconds=_STALE_STAGING_SECONDS)
        if stale:
            self.log.info("removed %d temporary file(s) left by a killed ingest in %s", stale, snapshots)
        with staged_file(snapshots, snap.DATA_FILE) as tmp:
            written = ingest_stream.write_snapshot_file(batches, lambda: open_file(tmp, "wb"))
            if written.passes > 1:
                self.log.info("read the source %d times: later batches widened column types", written.passes)
            if written.rows == 0 and self.skip_when_empty:
                self.skip(f"the source {source.get('uri') or source.get('conn_id')} has no rows for this run")
            if written.rows < self.min_rows:
                raise DataError(
                    f"the source has {written.rows} data row(s), fewer than min_rows={self.min_rows}; "
                    "check that the upstream export wrote its rows"
                )
            sha = written.sha256
            directory = self.storage.snapshot_dir(sha)
            manifest, created = self._reuse(directory), False
            if manifest is None:
                manifest, created = self._write_snapshot(context, directory, tmp, written, source)
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/dataset"):
                context["outlet_events"][asset].extra = {
                    "sha256": sha,
                    "rows": int(manifest["rows"]),
                    "created": created,
                }
        push_metrics("ingest", self.pipeline, context, manifest)
        return {
            "uri": str(directory),
            "sha256": sha,
            "rows": int(manifest["rows"]),
            "columns": int(manifest["columns"]),
            "created": created,
            "source": source.get("uri") or source.get("conn_id"),
        }

    def _reuse(self, directory: Any) -> dict[str, Any] | None:
        """The manifest of the snapshot already stored at ``directory``, verified; None if absent.

        A stored snapshot that fails its integrity check is never reused: its files are moved to
        ``snapshots/.damaged/<sha256>-<utc>/`` (kept for inspection) and the snapshot is written
        again from the source, whose content has exactly this hash.
        """
        from mlops_ops.errors import SnapshotIntegrityError
        from mlops_ops.hooks.storage import read_snapshot, remove_temporaries

        stale = remove_temporaries(directory)
        if stale:
            self.log.info(
                "removed %d temporary file(s) left by an interrupted ingest in %s", stale, directory
            )
        if not (directory / "manifest.json").exists():
            return None
        try:
            _, manifest = read_snapshot(str(directory), self.storage.conn_id)
        except SnapshotIntegrityError as err:
            moved_to = self._quarantine(directory)
            self.log.warning(
                "%s; its files were moved to %s and the snapshot is written again", err, moved_to
            )
            return None
        self.log.info(
            "snapshot %s already exists (%d rows, verified): nothing written",
            directory.name[:12],
            manifest["rows"],
        )
        return manifest

    def _quarantine(self, directory: Any) -> Any:
        import datetime as dt

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = directory.parent / ".damaged" / f"{directory.name}-{stamp}"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "data.parquet"):  # the manifest first: readers see no snapshot
            path = directory / name
            if path.exists():
                path.move(target / name)
        return target

    def _write_snapshot(
        self, context: Context, directory: Any, tmp: Any, written: Any, source: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Move the written data file into ``directory``, then write the manifest (write-once).

        Returns the manifest and whether this call created it (False: a concurrent run did).
        """
        from mlops_ops.core import canonical
        from mlops_ops.core import snapshot as snap
        from mlops_ops.hooks.storage import commit_file, json_bytes, read_json, write_once

        manifest = {
            "sha256": written.sha256,
            "uri": str(directory),
            "rows": written.rows,
            "columns": written.columns,
            "schema": written.schema,
            "source": source,
            "created_by": {**self.lineage(context), "logical_date": str(context.get("logical_date"))},
            "format": "parquet",
            "manifest_version": snap.MANIFEST_VERSION,
            snap.CONTENT_HASH_KEY: canonical.HASH_VERSION,
            "files": {snap.DATA_FILE: {"sha256": written.file_sha256, "bytes": written.file_bytes}},
            # the stored file holds the canonical batches that were hashed: readers re-hash it
            "content_verifiable": True,
        }
        commit_file(tmp, directory / snap.DATA_FILE)
        created = write_once(directory / snap.MANIFEST_FILE, json_bytes(manifest))
        if not created:  # another run stored the same content a moment ago: keep its manifest
            manifest = read_json(directory / snap.MANIFEST_FILE)
        self.log.info(
            "stored snapshot %s: %d rows x %d columns at %s",
            written.sha256[:12],
            written.rows,
            written.columns,
            directory,
        )
        return manifest, created
