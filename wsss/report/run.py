"""What a work directory holds for the report: config, per-stage results, manifests (the report's data)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINERS = ("classify", "bao", "affinity")  # stages that log train_log.jsonl through wsss.training
PSEUDO = {"crf": "CRF", "random_walk": "affinity + random walk", "bao": "BAO (learned background)"}



# ------------------------------------------------------------------------------------------------ gathering
class RunRecord:
    """What the stages of one work dir left behind, with a reason for everything that is not there."""

    def __init__(self, ctx: Any, stages: dict[str, bool | str]):
        """``stages``: every stage before the report, in order -> True when it runs, else why not (a string:
        disabled, or its module cannot be loaded); the stage layer supplies it."""
        from wsss.report.reading import read_json_or_none

        self.ctx, self.cfg, self.work = ctx, ctx.cfg, Path(ctx.work_dir)
        self.missing: list[str] = []  # every "not available" line, for the summary at the end
        summary, _ = read_json_or_none(self.work / "summary.json")
        self.summary = {s.get("stage"): s for s in summary.get("stages", [])} if isinstance(summary, dict) else {}
        self.stages = list(stages)
        self.enabled: dict[str, bool] = {}
        self.results: dict[str, dict | None] = {}
        self.why: dict[str, str | None] = {}
        for name, runs in stages.items():
            self.enabled[name] = runs is True
            if not self.enabled[name]:
                self.results[name], self.why[name] = None, (runs if isinstance(runs, str)
                                                            else f"stage '{name}' is disabled in the config")
                continue
            res, why = read_json_or_none(self.work / name / "results.json")
            if res is None:
                why = f"stage '{name}' has not finished in this work dir ({why})"
            elif not isinstance(res, dict):
                res, why = None, f"{self.work / name / 'results.json'} is not a JSON object"
            elif res.get("skipped"):
                why = f"stage '{name}' skipped: {res.get('reason', 'no reason given')}"
            self.results[name], self.why[name] = res, why

    def ok(self, name: str) -> bool:
        return self.results.get(name) is not None and self.why.get(name) is None

    def reason(self, name: str) -> str:
        return self.why.get(name) or (f"stage '{name}' is not part of this pipeline" if name not in self.stages
                                      else "no reason recorded")

    def na(self, what: str, reason: str) -> str:
        from wsss.report.page import na

        self.missing.append(f"{what}: {reason}")
        return na(reason)

    def file_json(self, stage: str, filename: str) -> tuple[Any, str | None]:
        from wsss.report.reading import read_json_or_none

        if not self.ok(stage):
            return None, self.reason(stage)
        return read_json_or_none(self.work / stage / filename)
