import pytest

from support.tiny_model import build_tiny_llama_gguf


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """The tiny random-weight model, built once (it is only read)."""
    return build_tiny_llama_gguf(tmp_path_factory.mktemp("model") / "tiny.gguf")
