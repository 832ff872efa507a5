"""Language models behind one interface: ctransformers and llama-cpp-python in a child
process, or an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

from overseer.config import LLMSettings, OpenAISettings
from overseer.core.generate.llm.backend import Backend, BackendError, Generation


def build_backend(settings: LLMSettings) -> Backend:
    if isinstance(settings, OpenAISettings):
        from overseer.core.generate.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(settings)
    from overseer.core.generate.llm.local_backend import LocalBackend

    return LocalBackend(settings)


__all__ = ["Backend", "BackendError", "Generation", "build_backend"]
