"""What ANALYZE found, in a form GENERATE, SAFETY, the history and the ranking all read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Where tests live (policy globs, base/globs.py): what a change to test code is, for the
# policy and the oracle guard, and what is not the project's own code, for the analyzers.
TEST_PATHS = ("**/tests/**", "**/test/**", "test_*.py", "*_test.py", "conftest.py")


@dataclass
class Finding:
    kind: str  # a ruff rule code (F401), failing_test, slow_test, xfail_test, todo, …
    area: str  # quality | performance | features
    change_type: str  # what fixing it would be: quality | bugfix | optimization | feature
    file: str | None
    message: str
    count: int = 1
    fixable: bool = False  # a deterministic, safe fix exists
    details: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0

    @property
    def label(self) -> str:
        where = f" in {self.file}" if self.file else ""
        times = f" ×{self.count}" if self.count > 1 else ""
        return f"{self.kind}{times}{where}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)
