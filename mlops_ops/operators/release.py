"""The release operators: judge a challenger under release, promote or roll it back, watch.

The training DAG's deploy step for the strategies canary, shadow and ab is
:class:`~mlops_ops.operators.deploy.ReleaseChallengerOperator`. The ``<name>_release`` DAG runs ``JudgeReleaseOperator`` ->
(``ApprovalOperator``) -> ``ConcludeReleaseOperator``, and ``WatchChampionOperator`` beside
them. The statistics are in :mod:`mlops_ops.core.release`, the ledger rules in
:mod:`mlops_ops.core.registry.releases`, the steps in :mod:`mlops_ops.services.release`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import model_asset
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.services.release import ReleaseService


def _claimant(context: Context) -> Any:
    from mlops_ops.core.registry import Claimant

    ti = context["ti"]
    return Claimant(ti.dag_id, ti.run_id, ti.task_id)


class _ReleaseOperator(MlopsBaseOperator):
    """What the release operators share: the release service and the prediction log."""

    @cached_property
    def release_service(self) -> ReleaseService:
        from mlops_ops.services.release import ReleaseService

        return ReleaseService(self.mlflow_hook, self.storage)

    def read_log(self, start: dt.datetime, end: dt.datetime) -> Any:
        """The prediction log from ``start`` to ``end``, each row with the label of its joined
        outcome when the feedback join has one (``label``; missing otherwise)."""
        from mlops_ops.core.release import attach_outcomes
        from mlops_ops.hooks.outcomes import read_joined_outcomes
        from mlops_ops.serving.prediction_log import read_prediction_log

        log = read_prediction_log(self.storage, start, end)
        outcomes = read_joined_outcomes(self.storage, predicted_since=start, predicted_until=end)
        out = attach_outcomes(log, outcomes)
        self.log.info(
            "%d of %d logged prediction(s) have a joined outcome", int(out["label"].notna().sum()), len(out)
        )
        return out


class JudgeReleaseOperator(_ReleaseOperator):
    """Judge the challenger under release on live traffic, once the bake is over.

    Skips when nothing is under release or the bake is not over (the reason in the log). Reads the
    prediction log since the release, judges (:func:`mlops_ops.core.release.judge_release`),
    writes the JSON + HTML report and returns the verdict. With ``action="rollback"`` (a human's
    request) the verdict is a rollback without waiting for the bake. When the verdict is a
    rollback, ``approval_task_id`` (the approval before a promotion) is skipped.

    :param deployment: ``spec.deployment`` as a dict (bake, guardrails, strategy).
    :param metric: the primary metric, tested on the logged rows that have a joined outcome
        (two-sample between the arms for canary and A/B, paired on the same requests for shadow).
    :param model_task: ``classification`` or ``regression``.
    :param action: ``judge`` (default) or ``rollback`` (templated).
    :param reason: why, for a rollback by hand (templated).
    :param approval_task_id: the approval task to skip when the verdict is a rollback.
    :param alpha: the judge's family-wise level (the false-rollback rate it allows).
    """

    template_fields: Sequence[str] = ("action", "reason")

    def __init__(
        self,
        *,
        deployment: dict[str, Any],
        metric: str | None = None,
        model_task: str = "classification",
        action: Any = "judge",
        reason: Any = "",
        approval_task_id: str | None = None,
        alpha: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.metric = metric
        self.model_task = model_task
        self.action = action
        self.reason = reason
        self.approval_task_id = approval_task_id
        self.alpha = alpha

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import release as judge

        release = self.release_service.read().open_release
        if release is None:
            self.skip(f"{self.pipeline} has no challenger under release: nothing to judge")
        now = dt.datetime.now(dt.UTC)
        by_hand = str(self.action).strip().lower() == "rollback"
        champion_alias = self.release_service.alias(self.pipeline, "champion")
        judgement = self._judge(release, now)
        override = judge.override_verdict(
            judgement,
            by_hand=(str(self.reason or "").strip() or "no reason given") if by_hand else None,
            promoted_already=champion_alias == release.version,
            bake=self._bake(release, now, judgement),
        )
        if override.skip:
            self.skip(override.reason)
        doc = self._report(context, override.judgement, release, now)
        for line in judge.judgement_lines(doc):
            self.log.info("%s", line)
        result = {
            k: doc[k]
            for k in ("verdict", "reasons", "release_seq", "version", "champion_version", "report_uri")
        }
        if self.approval_task_id and doc["verdict"] != judge.Verdict.PROMOTE:
            context["ti"].xcom_push(
                key="return_value", value=result
            )  # _skip_downstream() ends execute by raising
            self._skip_downstream(context, [self.approval_task_id])
        return result

    def _judge(self, release: Any, now: dt.datetime) -> Any:
        """The challenger's traffic since the release against the champion's over the same time."""
        from mlops_ops.core import release as judge

        champion, challenger = judge.split_arms(
            self.read_log(release.at, now),
            champion_version=release.champion_version,
            challenger_version=release.version,
        )
        return judge.judge_release(
            champion,
            challenger,
            judge.Guardrails.from_spec_dict(self.deployment["guardrails"]),
            alpha=self.alpha or judge.DEFAULT_ALPHA,
            metric=self.metric,
            task=self.model_task,
        )

    def _report(self, context: Context, judgement: Any, release: Any, now: dt.datetime) -> dict[str, Any]:
        """Write the JSON report and its HTML view; returns the document with its ``report_uri``."""
        from mlops_ops.core import release as judge
        from mlops_ops.core.registry.releases import CHALLENGER_ALIAS

        doc = judge.release_document(
            judgement, pipeline=self.pipeline, phase="release", start=release.at, end=now,
            extra={"release_seq": release.seq, "version": release.version, "champion_version": release.champion_version,
                   "strategy": release.doc.get("strategy"), "challenger_alias": CHALLENGER_ALIAS},
        )  # fmt: skip
        title = f"{self.pipeline} release v{release.version}"
        doc["report_uri"] = self.write_report(context, doc, judge.release_html(doc, title))
        return doc

    def _bake(self, release: Any, now: dt.datetime, judgement: Any) -> Any:
        from mlops_ops.core.registry.releases import bake_status

        bake = self.deployment["bake"]
        return bake_status(
            release,
            now=now,
            minutes=int(bake["minutes"]),
            min_requests=int(bake["min_requests"]),
            champion_requests=judgement.champion.requests,
            challenger_requests=judgement.challenger.requests,
        )

    def _skip_downstream(self, context: Context, task_ids: list[str]) -> None:
        from airflow.providers.standard.utils.skipmixin import SkipMixin

        tasks = [self.dag.get_task(t) for t in task_ids]
        SkipMixin().skip(context["ti"], tasks)


class ConcludeReleaseOperator(_ReleaseOperator):
    """Carry out the judge's verdict: promote (champion := challenger by compare-and-set, then
    delete ``challenger``) or roll back (delete ``challenger``; the champion never changes),
    recording why in the release ledger (and, for a promotion, the champion ledger).

    With ``approval_task_id``, a promotion needs that task's *Approve*; a *Reject* rolls the
    challenger back, naming who rejected it.

    :param judgement: the judge task's result (templated).
    :param approval_task_id: the ``ApprovalOperator`` before a promotion, if any.
    """

    template_fields: Sequence[str] = ("judgement",)

    def __init__(self, *, judgement: Any, approval_task_id: str | None = None, **kwargs: Any) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [model_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.judgement = judgement
        self.approval_task_id = approval_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.release import approval_outcome

        doc = self.judgement
        if not isinstance(doc, dict) or "verdict" not in doc:
            self.skip("the judge gave no verdict (nothing under release, or the bake is not over)")
        answer = context["ti"].xcom_pull(task_ids=self.approval_task_id) if self.approval_task_id else None
        promote, reasons = approval_outcome(doc, self.approval_task_id, answer)
        service = self.release_service
        release = next((r for r in service.read().records if r.seq == int(doc["release_seq"])), None)
        if release is None:
            raise AirflowFailException(
                f"the release ledger of {self.pipeline} has no record seq {doc['release_seq']}"
            )
        step = service.conclude(
            self.pipeline, release, promote=promote, claimant=_claimant(context), reasons=reasons,
            judgement={"verdict": doc["verdict"]}, report_uri=doc.get("report_uri"),
        )  # fmt: skip
        self.log.info("%s v%s: %s (release ledger seq %s, %s) because: %s", self.pipeline, step.version,
                      step.action, step.seq, step.outcome, "; ".join(step.reasons))  # fmt: skip
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/model"):
                context["outlet_events"][asset].extra = {"version": step.version, "action": step.action}
        return {
            "action": step.action,
            "version": step.version,
            "champion_version": step.champion_version,
            "reasons": list(step.reasons),
            "release_seq": step.seq,
            "ledger_uri": step.record_uri,
            "report_uri": doc.get("report_uri"),
        }


class WatchChampionOperator(_ReleaseOperator):
    """After a promotion, roll the new champion back to the one it replaced if a guardrail breaches.

    Compares the new champion's traffic since its promotion with the previous champion's during
    the bake, with the judge's tests (the level split over the window's looks, one per
    ``look_minutes``). Skips when no watch window is open, when there are too few requests yet,
    and while no guardrail breaches; records ``watch_passed`` when the window closes,
    ``watch_rollback`` when it rolls back (through the champion ledger's rollback path), and
    ``watch_ended`` when the champion was moved outside the release.

    :param deployment: ``spec.deployment`` as a dict (bake.min_requests, guardrails, watch.minutes).
    :param metric: the primary metric, tested where logged rows carry labels (templated).
    :param model_task: ``classification`` or ``regression``.
    :param look_minutes: how often the release DAG runs (its cron), for the level per look.
    :param alpha: the judge's family-wise level over the whole window.
    """

    template_fields: Sequence[str] = ("metric",)

    def __init__(
        self,
        *,
        deployment: dict[str, Any],
        metric: str | None = None,
        model_task: str = "classification",
        look_minutes: int = 15,
        alpha: float | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [model_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.deployment = deployment
        self.metric = metric
        self.model_task = model_task
        self.look_minutes = look_minutes
        self.alpha = alpha

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import release as judge
        from mlops_ops.core.registry.releases import ReleasePhase

        minutes = int(self.deployment["watch"]["minutes"])
        state, now = self.release_service.read(), dt.datetime.now(dt.UTC)
        if state.phase(now, minutes) is not ReleasePhase.WATCHING:
            self.skip(f"{self.pipeline} has no watch window open")
        promoted, ends = state.head, state.watch_ends(minutes)
        assert promoted is not None  # WATCHING: the head is a promotion
        assert ends is not None
        champion_now = self.release_service.alias(self.pipeline, "champion")
        judgement = self._judge(promoted, state.release_of(promoted), now, minutes)
        plan = judge.plan_watch(
            judgement, champion_now=champion_now, promoted_version=promoted.version, now=now, ends=ends,
            min_requests=int(self.deployment["bake"]["min_requests"]),
        )  # fmt: skip
        if plan.skip:
            self.skip(plan.reason)
        doc = judge.release_document(judgement, pipeline=self.pipeline, phase="watch", start=promoted.at, end=now,
                                     extra={"version": promoted.version, "previous_version": promoted.champion_version})  # fmt: skip
        doc["report_uri"] = self.write_report(
            context, doc, judge.release_html(doc, f"{self.pipeline} watch v{promoted.version}")
        )
        step = self.release_service.end_watch(
            self.pipeline, promoted, rollback=plan.rollback, ended=plan.ended, claimant=_claimant(context),
            reasons=[plan.reason, *doc["reasons"]], judgement={"verdict": doc["verdict"]}, report_uri=doc["report_uri"],
        )  # fmt: skip
        self.log.info("%s v%s: %s (%s)", self.pipeline, promoted.version, step.action, plan.reason)
        return {"action": step.action, "version": promoted.version, "previous_version": promoted.champion_version,
                "reasons": list(step.reasons), "release_seq": step.seq, "report_uri": doc["report_uri"]}  # fmt: skip

    def _judge(self, promoted: Any, baked: Any, now: dt.datetime, minutes: int) -> Any:
        """The new champion's traffic since its promotion (as the challenger) against the previous
        champion's during the bake, at the level of one look of the window."""
        from mlops_ops.core import release as judge

        frame = self.read_log(baked.at if baked else promoted.at, now)
        before, _ = judge.split_arms(
            frame[frame["ts"] < promoted.at],
            champion_version=promoted.champion_version,
            challenger_version="",
        )
        after, _ = judge.split_arms(
            frame[frame["ts"] >= promoted.at], champion_version=promoted.version, challenger_version=""
        )
        return judge.judge_release(
            before,
            after,
            judge.Guardrails.from_spec_dict(self.deployment["guardrails"]),
            alpha=judge.watch_level(self.alpha or judge.DEFAULT_ALPHA, minutes, self.look_minutes),
            metric=self.metric,
            task=self.model_task,
        )
