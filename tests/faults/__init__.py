import pytest

# drill.py holds the shared invariant checks: their failures should say what differed.
pytest.register_assert_rewrite("faults.drill")
