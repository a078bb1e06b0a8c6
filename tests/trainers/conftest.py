import pytest


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A small locally built model + tokenizer (built once per test session)."""
    from traject.agents.hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=64, intermediate_size=128, num_layers=1,
                            corpus_tasks=40, vocab_size=512)
