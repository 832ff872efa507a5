"""The `features` analyzer: xfail tests with a reason, a NotImplementedError a test reaches,
TODO/FIXME comments next to code — and the xfail mark, found and removed exactly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from overseer.core.analyze.features import (
    feature_findings,
    removed_xfail_marks,
    without_xfail_mark,
    xfail_marks,
)
from overseer.core.analyze.findings import Finding
from overseer.core.analyze.rank import rank
from overseer.core.plumbing.testrun import TestCase, TestReport
from support.helpers import write_files

MARKS = """import pytest
from pytest import mark


class TestShapes:
    @pytest.mark.xfail(reason="circles are not drawn yet")
    def test_circle(self):
        assert 0


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.xfail(
    reason="frobnicate is missing",  # see the issue
    raises=NotImplementedError,
)
def test_frobnicate(n):
    assert 0


@mark.xfail(reason="same mark, other test")
def test_other():
    assert 0


@pytest.mark.xfail
def test_no_reason():
    assert 0


@pytest.mark.xfail(reason="   ")
def test_blank_reason():
    assert 0


@pytest.mark.xfail("sys.platform == 'win32'", reason="a condition")
def test_conditional():
    assert 0


@pytest.mark.xfail(condition=True, reason="a condition too")
def test_conditional_keyword():
    assert 0


def test_runtime():
    pytest.xfail("decided at run time")
"""


def test_only_unconditional_marks_with_a_reason_count():
    marks = xfail_marks(MARKS)
    assert marks is not None
    assert {name: m.reason for name, m in marks.items()} == {
        "TestShapes.test_circle": "circles are not drawn yet",
        "test_frobnicate": "frobnicate is missing",
        "test_other": "same mark, other test",
    }
    assert (marks["test_frobnicate"].start, marks["test_frobnicate"].end) == (12, 15)
    assert xfail_marks("def test_x(:\n") is None


def test_removing_a_mark_removes_its_lines_and_nothing_else():
    after = without_xfail_mark(MARKS, "test_frobnicate")
    assert after == MARKS.replace(
        '@pytest.mark.xfail(\n    reason="frobnicate is missing",  # see the issue\n'
        "    raises=NotImplementedError,\n)\n",
        "",
    )
    assert '@pytest.mark.parametrize("n", [1, 2])\ndef test_frobnicate(n):' in after
    assert removed_xfail_marks(MARKS, after) == ["test_frobnicate"]
    method = without_xfail_mark(MARKS, "TestShapes.test_circle")
    assert "    def test_circle(self):" in method and "circles" not in method
    assert without_xfail_mark(MARKS, "test_no_reason") is None
    assert without_xfail_mark(MARKS, "test_missing") is None


def test_which_marks_a_change_removes():
    swapped = MARKS.replace('@mark.xfail(reason="same mark, other test")', "@pytest.mark.skip")
    assert removed_xfail_marks(MARKS, swapped) == ["test_other"]
    deleted = MARKS.replace("def test_other", "def helper_other")  # not a test any more
    assert removed_xfail_marks(MARKS, deleted) == []  # the oracle guard says "deletes"
    assert removed_xfail_marks(MARKS, None) == sorted(xfail_marks(MARKS) or {})
    assert removed_xfail_marks(None, MARKS) == []
    assert removed_xfail_marks(MARKS, MARKS + "\n") == []


# -- finding them in a repository ---------------------------------------------------------

CALC = '''"""Arithmetic."""


def add(a, b):
    return a + b


def divide(a, b):
    raise NotImplementedError("divide is not written yet")


def power(a, b):
    raise NotImplementedError


def modulo(a, b):
    if b:
        raise NotImplementedError("modulo is next")
    return 0


class Shape:
    def area(self):
        raise NotImplementedError  # subclasses say


class Square(Shape):
    def area(self):
        return 1


class Reader:
    def read(self):
        raise NotImplementedError()
'''
CALC_TEST = """import pytest

from calc import ops
from calc.ops import Reader, Square, add, divide


def test_add():
    assert add(2, 3) == 5


@pytest.mark.xfail(reason="division is missing")
def test_divide():
    assert divide(6, 3) == 2


def test_modulo():
    assert ops.modulo(7, 2) == 1


def test_square():
    assert Square().area() == 1


def test_reader():
    with pytest.raises(NotImplementedError):
        Reader().read()
"""
TODOS = '''"""TODO: in a docstring, not a comment."""

# TODO: handle negative numbers in every function below
def clamp(x):
    return max(x, 0)  # FIXME(ann): the upper bound is missing entirely


# TODO: later


# TODO: a comment far from any code, about nothing in particular

TEXT = "# TODO: in a string, never a comment"
'''


def report(cases: dict[str, tuple[str, str]]) -> TestReport:
    """A test run at the head: test id → (outcome, file)."""
    return TestReport(
        "pytest",
        "x",
        0,
        False,
        1.0,
        "",
        True,
        {test: TestCase(outcome, 0.01, file) for test, (outcome, file) in cases.items()},
    )


def calc_tree(root: Path) -> Path:
    write_files(
        root,
        {
            "src/calc/__init__.py": "",
            "src/calc/ops.py": CALC,
            "src/calc/todo.py": TODOS,
            "tests/test_ops.py": CALC_TEST,
            "tests/test_marks.py": MARKS,
            "tests/helpers.py": "# TODO: a helper for the tests, never the project's code\nX = 1\n",
            ".venv/lib/site.py": "def f():\n    raise NotImplementedError\n",
        },
    )
    return root


RUN = report(
    {
        "tests.test_ops::test_add": ("passed", "tests/test_ops.py"),
        "tests.test_ops::test_divide": ("xfailed", "tests/test_ops.py"),
        "tests.test_ops::test_modulo": ("failed", "tests/test_ops.py"),
        "tests.test_marks.TestShapes::test_circle": ("xfailed", "tests/test_marks.py"),
        "tests.test_marks::test_frobnicate[1]": ("xfailed", "tests/test_marks.py"),
        "tests.test_marks::test_frobnicate[2]": ("xfailed", "tests/test_marks.py"),
        # Marked, yet it passed (non-strict xpass): nothing missing.
        "tests.test_marks::test_other": ("passed", "tests/test_marks.py"),
        "tests.test_marks::test_no_reason": ("xfailed", "tests/test_marks.py"),
        "tests.test_marks::test_runtime": ("xfailed", "tests/test_marks.py"),
    }
)


def test_the_features_a_repository_documents(tmp_path):
    found = feature_findings(RUN, calc_tree(tmp_path))
    assert {f.area for f in found} == {"features"}
    assert {f.change_type for f in found} == {"feature"}
    by_kind: dict[str, list[Finding]] = {}
    for f in found:
        by_kind.setdefault(f.kind, []).append(f)

    xfails = {f.details["function"]: f for f in by_kind["xfail_test"]}
    assert sorted(xfails) == ["TestShapes.test_circle", "test_divide", "test_frobnicate"]
    divide = xfails["test_divide"]
    assert divide.file == "tests/test_ops.py"
    assert divide.details["tests"] == ["tests.test_ops::test_divide"]
    assert divide.details["reason"] == "division is missing"
    assert divide.message == "tests.test_ops::test_divide is marked xfail: division is missing"
    assert xfails["test_frobnicate"].details["tests"] == [
        "tests.test_marks::test_frobnicate[1]",
        "tests.test_marks::test_frobnicate[2]",
    ]

    # modulo is reached by a test; power by none; divide by the xfail test that is a finding
    # of its own (the better one); Shape.area is the base-class idiom; Reader.read is reached
    # (a test names it), whatever that test expects.
    missing = {f.details["function"]: f for f in by_kind["not_implemented"]}
    assert sorted(missing) == ["Reader.read", "modulo"]
    assert missing["modulo"].file == "src/calc/ops.py"
    assert missing["modulo"].details["rows"] == [18]
    assert missing["modulo"].details["tests"] == ["tests/test_ops.py::test_modulo"]
    assert missing["modulo"].details["test_files"] == ["tests/test_ops.py"]
    assert missing["modulo"].message == (
        "modulo raises NotImplementedError; 1 test(s) reach it: tests/test_ops.py::test_modulo"
    )

    todos = {f.details["text"]: f for f in by_kind["todo"]}
    assert sorted(todos) == [
        "handle negative numbers in every function below",
        "the upper bound is missing entirely",
    ]
    assert todos["the upper bound is missing entirely"].details["rows"] == [5]
    assert all(f.file == "src/calc/todo.py" for f in todos.values())


def test_a_test_report_names_no_file_outside_the_tree(tmp_path):
    """The report's file names are the target's text: one that leads out is not read."""
    write_files(tmp_path, {"outside/test_x.py": MARKS, "tree/tests/test_x.py": MARKS})
    outside = {
        "tests.test_x::test_other": ("xfailed", "../outside/test_x.py"),
        "tests.test_x.TestShapes::test_circle": ("xfailed", str(tmp_path / "outside/test_x.py")),
    }
    inside = {"tests.test_x::test_frobnicate[1]": ("xfailed", "tests/test_x.py")}
    found = feature_findings(report({**outside, **inside}), tmp_path / "tree")
    assert [f.details["function"] for f in found] == ["test_frobnicate"]


def test_nothing_to_find_is_nothing_found(sample):
    found = feature_findings(report({"tests.test_util::test_double": ("passed", "x")}), sample.repo)
    assert found == []


def test_features_rank_by_how_checkable_they_are(tmp_path):
    """Whatever the draws of Thompson sampling and whatever was learned: features are learned
    as one, so their order among themselves is how checkable each is."""
    found = feature_findings(RUN, calc_tree(tmp_path))
    order = ["xfail_test", "not_implemented", "todo"]
    learned = {("llm", "todo"): (9, 9), ("llm", "xfail_test"): (0, 9)}
    for seed in range(20):
        for counts in ({}, learned):
            ranked = rank(
                found,
                area="features",
                generator_for=lambda f: "llm",
                counts=counts,
                rng=random.Random(seed),
            )
            kinds = [f.kind for f in ranked]
            assert kinds == sorted(kinds, key=order.index), (seed, counts)
    ranked = rank(found, area="features", generator_for=lambda f: "llm", counts=learned)
    assert ranked[0].score == round(2.5 * (9 + 1) / (18 + 2) * 1.1, 4)  # 9 of 18 kept
    # An xfail finding's file is a test file: that is where its oracle is, not a penalty.
    lint = Finding("F401", "quality", "quality", "tests/test_ops.py", "unused", count=1)
    both = rank([*found, lint], area="auto", generator_for=lambda f: "llm", counts={})
    assert both[0].kind == "xfail_test" and both.index(lint) > 2
    assert rank(found, area="quality", generator_for=lambda f: "llm", counts={}) == []


@pytest.mark.parametrize(
    ("setting", "acts_on"),
    [
        ("tested", {"xfail_test", "not_implemented"}),
        ("all", {"xfail_test", "not_implemented", "todo"}),
        ("none", set()),
    ],
)
def test_which_features_a_model_may_write(tmp_path, setting, acts_on):
    from overseer.config import OpenAISettings
    from overseer.core.generate.model import LLMGenerator

    settings = OpenAISettings(
        backend="openai", base_url="http://127.0.0.1:9/v1", model="m", features=setting
    )
    generator = LLMGenerator(settings)
    found = feature_findings(RUN, calc_tree(tmp_path))
    assert {f.kind for f in found if generator.can_handle(f)} == acts_on
