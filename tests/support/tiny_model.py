"""A tiny random-weight LLaMA model in GGUF, built for the tests (nothing is downloaded).

ctransformers 0.2.27 loads it when it has an explicit `output.weight` (no tied embeddings),
the 256 byte tokens `<0x00>`…`<0xFF>` (upper-case hex) with scores and token types, and float32
norm weights. It is about 0.5 MB, loads in milliseconds and generates readable nonsense: the
logits of the special and byte tokens are zeroed so the text is made of the word pieces.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["the", "a", "hello", "world", "and", "of", "to", "in", "is", "it", "cat", "dog"]


def pieces() -> list[str]:
    """'▁', every prefix of '▁word' (so the tokenizer can merge whole words), '▁x', letters."""
    out = ["▁"]
    for word in WORDS:
        for k in range(1, len(word) + 1):
            piece = "▁" + word[:k]
            if piece not in out:
                out.append(piece)
    lower = "abcdefghijklmnopqrstuvwxyz"
    out += ["▁" + c for c in lower if "▁" + c not in out]
    return out + list(lower) + list(lower.upper()) + list("0123456789.,!?'{}[]:\"_=()")


def build_tiny_llama_gguf(
    path: Path, *, seed: int = 0, words: int = 96, context_length: int = 512
) -> Path:
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    n_embd, n_head, n_ff, n_layer = 64, 4, 128, 2
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    normal = pieces()[:words]
    normal += [f"▁tok{i}" for i in range(words - len(normal))]
    for i, piece in enumerate(normal):
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-float(i + 1))  # earlier pieces merge first
    vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("overseer-test-tiny-llama")
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all float32
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def matrix(rows: int, cols: int):  # numpy (out, in): ggml stores it as [in, out]
        return (rng.standard_normal((rows, cols)) * 0.2).astype(np.float32)

    def ones(n: int):
        return np.ones(n, dtype=np.float32)

    writer.add_tensor("token_embd.weight", matrix(vocab, n_embd))
    for layer in range(n_layer):
        p = f"blk.{layer}."
        writer.add_tensor(p + "attn_norm.weight", ones(n_embd))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(p + name + ".weight", matrix(n_embd, n_embd))
        writer.add_tensor(p + "ffn_norm.weight", ones(n_embd))
        writer.add_tensor(p + "ffn_gate.weight", matrix(n_ff, n_embd))
        writer.add_tensor(p + "ffn_up.weight", matrix(n_ff, n_embd))
        writer.add_tensor(p + "ffn_down.weight", matrix(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", ones(n_embd))
    output = matrix(vocab, n_embd)
    output[:259] = 0.0  # special and byte tokens: never preferred, so the text stays readable
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
