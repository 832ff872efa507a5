"""`overseer run --once --metrics-file PATH` (issue 16): the metrics for node-exporter's textfile
collector, written whole and parseable, with the cycle it ran."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from support.helpers import overseer, rows


def test_run_once_writes_a_metrics_file_that_parses(tmp_path, repo):
    state = tmp_path / "state"
    path = tmp_path / "textfile" / "overseer.prom"
    path.parent.mkdir()
    out = overseer(
        "run", "--once", "--target", str(repo), "--state-dir", str(state),
        "--metrics-file", str(path),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    counts = [
        s for s in families["overseer_cycle_duration_seconds"].samples if s.name.endswith("_count")
    ]
    assert [s.value for s in counts] == [1.0]
    attempts = sum(s.value for s in families["overseer_attempts"].samples)
    assert attempts == len(rows(state, "improvements"))
    assert [p.name for p in path.parent.iterdir()] == ["overseer.prom"]  # no temporary file left
