"""ONNX Runtime encoder for sentence-transformers models (optionally int8-quantised).

The transformer plus mean pooling and L2 normalisation are exported once to a single ONNX graph
(`embedding = normalize(mean(last_hidden_state, mask))`, the all-MiniLM-L6-v2 recipe), then run
with ONNX Runtime. The fp32 graph reproduces the PyTorch vectors (cosine 1.0); the int8 graph
quantises the weights of the matrix multiplications dynamically, per output channel, leaving
the feed-forward output projections in fp32 because their post-GELU inputs carry outliers that
int8 cannot represent (quantising them costs most of the cosine loss).

Exported files live in `$WORKBENCH_ONNX_CACHE` (default `~/.cache/ts-workbench/onnx`), in a
folder named for the model and a digest of its weights, so a changed model re-exports.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import ModelError

_ENV_CACHE = "WORKBENCH_ONNX_CACHE"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_cache_dir() -> Path:
    env = os.environ.get(_ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "ts-workbench" / "onnx"


def _weights_digest(source: str) -> str:
    """Short SHA-256 of a local model folder, or of the hub name: every file (relative path, size
    and bytes; hidden folders such as .git left out), since the weights, the configs and the
    tokenizer files all change the vectors. Contents, not modification times: a file swapped in
    with its old size and time still gets a fresh export instead of the stale graph."""
    folder = Path(source)
    h = hashlib.sha256()
    if folder.is_dir():
        files = sorted((f.relative_to(folder), f) for f in folder.rglob("*") if f.is_file())
        for rel, f in files:
            if any(part.startswith(".") for part in rel.parts):
                continue
            h.update(f"{rel.as_posix()}\0{f.stat().st_size}\0".encode("utf-8", "surrogateescape"))
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    else:
        h.update(source.encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _transformer_folder(source: str) -> str:
    """The folder (or hub name) of the transformer inside a sentence-transformers model; a
    `modules.json` that is not a list of modules, or whose path leads outside `source`, is one
    ModelError line (it would otherwise load another folder's model)."""
    import json

    modules = Path(source) / "modules.json"
    if not modules.is_file():
        return source
    try:
        listed = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"{modules}: unreadable ({str(exc).splitlines()[0][:200] if str(exc) else exc!r})") from None
    if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
        raise ModelError(f"{modules}: not a list of modules")
    for m in listed:
        if str(m.get("type", "")).endswith("Transformer"):
            sub = m.get("path") or ""
            if not isinstance(sub, str):
                raise ModelError(f"{modules}: the transformer's path {sub!r} is not a folder name")
            root = Path(source).resolve()
            target = (root / sub).resolve()
            if target != root and root not in target.parents:
                raise ModelError(f"{modules}: the transformer's path {sub!r} leads outside {source}: refused")
            return str(Path(source) / sub) if sub else source
    return source


def export_onnx(source: str, out: Path) -> Path:
    """Export transformer + mean pooling + L2 normalisation of `source` to `out` (fp32)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = _transformer_folder(source)
    # trust_remote_code=False: a config naming code of its own (auto_map) is refused, never run or asked about
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", trust_remote_code=False).eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, p=2, dim=1)

    enc = tok(["a short one", "and a somewhat longer example sentence"], padding=True, return_tensors="pt")
    if "token_type_ids" not in enc:
        enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    dyn = {name: {0: "batch", 1: "seq"} for name in INPUTS}
    dyn["embedding"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(Pooled(model), tuple(enc[k] for k in INPUTS), str(tmp), input_names=list(INPUTS),
                          output_names=["embedding"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    tmp.replace(out)
    tok.save_pretrained(out.parent / "tokenizer")
    return out


def quantize_onnx(fp32: Path, out: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights, per channel, FFN output layers kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    keep_fp32 = [n.name for n in graph.node
                 if n.op_type == "MatMul" and "/output/dense" in n.name and "attention" not in n.name]
    tmp = out.with_suffix(".tmp.onnx")
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_fp32)
    tmp.replace(out)
    return out


class OnnxEncoder:
    """Encodes texts like `SentenceTransformer.encode(normalize_embeddings=True)`, on ONNX Runtime."""

    def __init__(self, source: str, quantize: bool = False, batch_size: int = 64, max_seq_length: int = 128,
                 threads: int | None = None) -> None:
        self.source = source
        self.quantize = quantize
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None

    def model_path(self) -> Path:
        """Path of the (exported, and if asked quantised) ONNX file, created when missing."""
        folder = onnx_cache_dir() / f"{Path(self.source).name or 'model'}-{_weights_digest(self.source)}"
        fp32 = folder / "model.onnx"
        if not fp32.exists():
            export_onnx(self.source, fp32)
        if not self.quantize:
            return fp32
        int8 = folder / "model-int8.onnx"
        if not int8.exists():
            quantize_onnx(fp32, int8)
        return int8

    def _load(self) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = self.model_path()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._tokenizer = AutoTokenizer.from_pretrained(path.parent / "tokenizer", trust_remote_code=False)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """(n, dim) float32 unit vectors; batches are formed by length to cut padding."""
        from tqdm.auto import tqdm

        if self._session is None:
            self._load()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        starts = range(0, len(texts), self.batch_size)
        for i in tqdm(starts, desc="encoding (onnx)", disable=not show_progress, leave=False):
            idx = order[i:i + self.batch_size]
            enc = self._tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                  max_length=self.max_seq_length, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in INPUTS if k in enc}
            if "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            vecs = np.asarray(self._session.run(None, feeds)[0])
            if vecs.ndim != 2 or len(vecs) != len(idx) or not np.isfinite(vecs).all():
                raise ModelError(f"ONNX model {self.model_path()} gave {vecs.shape} outputs for {len(idx)} texts, "
                                 "or NaN / infinite values: a broken or replaced export (delete it to export again)")
            for j, v in zip(idx, vecs):
                out[j] = v
        return np.stack(out).astype(np.float32) if texts else np.zeros((0, 0), dtype=np.float32)
