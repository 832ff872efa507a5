"""The change-success predictor (the seed's PREDICT "change-success-predictor").

It estimates the probability that a change will be kept — promoted and not rolled back — from
what is known about it: its generator and finding kind, change type and risk, its size, its
test results on its branch and its performance delta (once evaluated), and how changes to the
same file fared before. A logistic regression (scikit-learn) is refitted on the history after
every outcome (the seed's sp_UpdateModelWeightsFromFeedback) and saved with a version number,
so it survives restarts.

With fewer than MIN_OUTCOMES labelled outcomes, or only one kind of outcome, there is nothing to
fit; the documented prior is used instead: per generator × finding kind, the mean of a
Beta(1, 1) prior updated with that pair's kept/attempted counts — 1/2 for a pair never tried.

Calibration is tracked from the predictions recorded on the attempts before their outcome was
known: the Brier score and, per bucket of predicted probability, the share actually kept.
scikit-learn is imported only when fitting or predicting with a model, never by the CLI or an
idle daemon.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overseer.core.analyze.rank import learned_rate
from overseer.core.record.history import History
from overseer.vocabulary import AttemptRow

MIN_OUTCOMES = 20
BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class Prediction:
    probability: float
    source: str  # "prior" or "model vN"


def features(row: Mapping[str, Any], file_rate: float) -> dict[str, Any]:
    """What the model sees of an attempt; the same shape at training and prediction time.
    `row`: an attempt (AttemptRow), or the features stored with an outcome (features_of)."""
    evaluated = row.get("tests_passed") is not None or row.get("tests_failed") is not None
    delta = row.get("performance_delta")
    files = row.get("files_changed")  # a list in an attempt, a count in stored features
    return {
        f"generator={row.get('generator')}": 1,
        f"finding={row.get('finding_kind')}": 1,
        f"change_type={row.get('change_type')}": 1,
        f"risk={row.get('risk_level') or row.get('stated_risk')}": 1,
        "log_lines": math.log1p(row.get("lines_changed") or 0),
        "files": float(files if isinstance(files, int | float) else len(files or [])),
        "evaluated": 1.0 if evaluated else 0.0,
        "tests_failed": float(row.get("tests_failed") or 0),
        "has_perf": 1.0 if delta is not None else 0.0,
        "perf_delta": float(delta or 0.0) / 100,
        "file_rate": file_rate,
    }


class Predictor:
    def __init__(self, history: History, directory: Path) -> None:
        self.history = history
        self.directory = directory
        self._model: Any = None
        self._version: int | None = None
        self._loaded = False
        # One per state directory, shared by the cycles of every target, which may finish at
        # once: two refits would both write the next version.
        self._lock = threading.RLock()

    # -- state ------------------------------------------------------------------------------

    def latest(self) -> dict[str, Any] | None:
        rows = self.history.query("select * from predictor order by version desc limit 1")
        return rows[0] if rows else None

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            latest = self.latest()
            if latest and latest.get("path") and Path(latest["path"]).exists():
                with Path(latest["path"]).open("rb") as f:
                    self._model = pickle.load(f)  # our own file, in our state directory
                self._version = int(latest["version"])

    @property
    def version(self) -> int | None:
        self._load()
        return self._version

    # -- predicting -------------------------------------------------------------------------

    def file_rate(self, target_file: str | None) -> float:
        if not target_file:
            return 0.5
        kept, attempts = self.history.file_counts(target_file)
        return learned_rate(kept, attempts)

    def predict(self, row: AttemptRow) -> Prediction:
        self._load()
        if self._model is None:
            generator, kind = row.get("generator"), row.get("finding_kind")
            counts = (0, 0)
            if generator is not None and kind is not None:
                counts = self.history.success_counts().get((generator, kind), (0, 0))
            return Prediction(round(learned_rate(*counts), 3), "prior")
        x = features(row, self.file_rate(row.get("target_file")))
        probability = float(self._model.predict_proba([x])[0][1])
        return Prediction(round(probability, 3), f"model v{self._version}")

    # -- learning ---------------------------------------------------------------------------

    def training_rows(self) -> list[tuple[dict[str, Any], int]]:
        rows = []
        seen: dict[str, list[int]] = {}
        for outcome in self.history.outcomes():
            data = outcome.get("features") or {}
            target_file = data.get("target_file")
            before = seen.get(target_file, []) if target_file else []
            kept, n = sum(before), len(before)
            rows.append((features(data, learned_rate(kept, n)), int(outcome["kept"])))
            if target_file:
                seen.setdefault(target_file, []).append(int(outcome["kept"]))
        return rows

    def refit(self) -> dict[str, Any] | None:
        """Fit on every outcome so far and save a new version; None while the prior applies."""
        with self._lock:
            return self._refit()

    def _refit(self) -> dict[str, Any] | None:
        rows = self.training_rows()
        labels = {y for _, y in rows}
        if len(rows) < MIN_OUTCOMES or len(labels) < 2:
            return None
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from threadpoolctl import threadpool_limits

        started = time.monotonic()
        model = make_pipeline(
            DictVectorizer(sparse=False), LogisticRegression(C=1.0, max_iter=1000)
        )
        # One BLAS thread: the fit is small, and OpenBLAS's threads spin while they wait, on
        # the cores the cycles' test runs need (measured in the suite: 11.2 s of CPU with the
        # default threads, 4.2 s with one, for the same fits on a busy 2-core machine).
        with threadpool_limits(limits=1):
            model.fit([x for x, _ in rows], [y for _, y in rows])
        seconds = time.monotonic() - started
        version = (self.latest() or {}).get("version", 0) + 1
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"model-v{version}.pkl"
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as f:
            pickle.dump(model, f)
        temporary.replace(path)  # a crash never leaves half a model behind
        calibration = self.calibration()
        record = {
            "version": version,
            "trained_at": self.history.now(),
            "rows": len(rows),
            "kept": sum(y for _, y in rows),
            "seconds": round(seconds, 3),
            "path": str(path),
            **calibration,
        }
        self.history.add_predictor_version(record)
        for old in self.directory.glob("model-v*.pkl"):  # keep the last few
            if old != path and int(old.stem.split("-v")[1]) < version - 3:
                old.unlink(missing_ok=True)
        self._model, self._version, self._loaded = model, version, True
        return record

    def calibration(self) -> dict[str, Any]:
        """Brier score and reliability by bucket, of the predictions made before outcomes."""
        pairs = self.history.predictions_and_outcomes()
        if not pairs:
            return {"brier": None, "reliability": []}
        brier = sum((p - y) ** 2 for p, y in pairs) / len(pairs)
        reliability = []
        for low, high in zip(BUCKETS, BUCKETS[1:], strict=False):
            inside = [(p, y) for p, y in pairs if low <= p < high or (high == 1.0 and p == 1.0)]
            if inside:
                reliability.append(
                    {
                        "bucket": f"{low:.1f}-{high:.1f}",
                        "n": len(inside),
                        "predicted": round(sum(p for p, _ in inside) / len(inside), 3),
                        "kept": round(sum(y for _, y in inside) / len(inside), 3),
                    }
                )
        return {"brier": round(brier, 4), "reliability": reliability, "scored": len(pairs)}
