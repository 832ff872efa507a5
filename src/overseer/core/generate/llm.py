"""The `llm` generator: a language model writes the candidate change.

For one finding it builds a prompt (the finding, the code — fitted to the model's context with
the model's own tokenizer — and up to k changes of the same kind that were kept), asks the
model for N candidates (N-best, one seed each), and reads each reply. The edits are applied by
SAFETY, not here: a reply is only a proposal. Everything needed to replay the attempt — the
prompt, the model's identity, the sampling settings, the raw replies — goes into the history,
including for replies that could not be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from overseer.config import LLMSettings
from overseer.core.analyze.findings import Finding
from overseer.core.candidate import Candidate, GenerationFailed
from overseer.core.globs import first_match
from overseer.core.history import PROMOTED, History
from overseer.core.llm import Backend, BackendError, build_backend
from overseer.core.llm.prompt import PromptTooLong, build_prompt
from overseer.core.llm.reply import ReplyRejected, parse_reply
from overseer.core.secrets import Redactor

MAX_SOURCE_BYTES = 512 * 1024
EXAMPLE_DIFF_CHARS = 1500


class LLMGenerator:
    name = "llm"

    def __init__(
        self,
        settings: LLMSettings,
        history: History | None = None,
        *,
        secret_files: tuple[str, ...] = (),
        redactor: Redactor | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or build_backend(settings)
        self.history = history
        self.secret_files = secret_files
        self.redactor = redactor or Redactor([])

    def __repr__(self) -> str:
        return f"LLMGenerator({self.backend.identity().get('backend')})"

    def can_handle(self, finding: Finding) -> bool:
        if not finding.file or not finding.file.endswith(".py"):
            return False
        return first_match(self.secret_files, finding.file) is None  # never read into a prompt

    def examples(self, finding: Finding) -> list[tuple[str, str]]:
        """Changes of the same kind that were kept, newest first."""
        if self.history is None or not self.settings.examples:
            return []
        rows = self.history.attempts(statuses=(PROMOTED,), limit=50)
        kept = [
            r for r in rows if r.get("finding_kind") == finding.kind and r.get("generated_code")
        ]
        return [
            (
                r["improvement_id"],
                f"{r.get('summary') or ''}\n{r['generated_code'][:EXAMPLE_DIFF_CHARS]}",
            )
            for r in kept[: self.settings.examples]
        ]

    def generate(self, finding: Finding, tree: Path) -> list[Candidate]:
        if not self.can_handle(finding) or finding.file is None:
            raise GenerationFailed(f"llm does not act on {finding.kind} in {finding.file}")
        path = tree / finding.file
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_SOURCE_BYTES:
            raise GenerationFailed(
                f"{finding.file} is not a regular file under {MAX_SOURCE_BYTES} bytes"
            )
        code = path.read_text(encoding="utf-8", errors="replace")
        s = self.settings
        record: dict[str, Any] = {
            "model": self.backend.identity(),
            "settings": {
                "temperature": s.temperature,
                "max_new_tokens": s.max_new_tokens,
                "seed": s.seed,
                "candidates": s.candidates,
                "context_length": s.context_length,
            },
            "replies": [],
        }
        candidates = []
        try:
            with self.backend.session() as session:
                budget = session.context_length - s.max_new_tokens
                prompt = build_prompt(
                    finding,
                    finding.file,
                    self.redactor.text(code),
                    self.examples(finding),
                    budget=budget,
                    count=session.count,
                )
                record["prompt"] = prompt.text
                record["prompt_tokens"] = prompt.tokens
                record["window"] = prompt.window
                record["examples"] = prompt.examples
                for n in range(s.candidates):
                    seed = s.seed + n
                    reply = session.generate(prompt.text, seed=seed)
                    entry: dict[str, Any] = {
                        "seed": seed,
                        "raw": self.redactor.text(reply.text),
                        "tokens": reply.tokens,
                        "seconds": reply.seconds,
                    }
                    record["replies"].append(entry)
                    try:
                        parsed = parse_reply(reply.text)
                    except ReplyRejected as exc:
                        entry["error"] = str(exc)
                        continue
                    candidates.append(self._candidate(finding, parsed, n, record))
        except (BackendError, PromptTooLong) as exc:
            raise GenerationFailed(str(exc), provenance=record) from None
        if not candidates:
            reasons = "; ".join(r.get("error", "") for r in record["replies"])
            raise GenerationFailed(f"no usable reply from the model: {reasons}", provenance=record)
        return candidates

    def _candidate(self, finding: Finding, reply: Any, n: int, record: dict[str, Any]) -> Candidate:
        summary = (
            reply.impact.splitlines()[0][:100]
            if reply.impact
            else f"{finding.kind} in {reply.target_file}"
        )
        return Candidate(
            generator=self.name,
            finding=finding,
            change_type=reply.change_type,
            stated_risk=reply.risk_level,
            summary=summary,
            impact=reply.impact,
            rationale=reply.rationale,
            edits=reply.edits,
            provenance={**record, "chosen_reply": n},
        )
