"""ONNX Runtime encoder for sentence-transformers models (optionally int8-quantised).

The transformer plus mean pooling and L2 normalisation are exported once to a single ONNX graph
(`embedding = normalize(mean(last_hidden_state, mask))`, the all-MiniLM-L6-v2 recipe), then run
with ONNX Runtime. The fp32 graph reproduces the PyTorch vectors (cosine 1.0); the int8 graph
quantises the weights of the matrix multiplications dynamically, per output channel, leaving
the feed-forward output projections in fp32 because their post-GELU inputs carry outliers that
int8 cannot represent (quantising them costs most of the cosine loss).

Exported files live in `$WORKBENCH_ONNX_CACHE` (default `~/.cache/ts-workbench/onnx`), in a
folder named for the model and a digest of its files' contents, so a changed model re-exports;
each graph has a sidecar (`model.onnx.json`) recording the full digest of the folder it was
exported from and its own SHA-256, checked on every load: a planted or stale graph is exported
again, never run.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import ModelError
from .model_folder import check_sentence_folder, content_digest, sentence_modules

_ENV_CACHE = "WORKBENCH_ONNX_CACHE"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_cache_dir() -> Path:
    env = os.environ.get(_ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "ts-workbench" / "onnx"


def _weights_digest(source: str) -> str:
    """Short content digest of a local model folder, or of the hub name (`model_folder.content_digest`:
    every file's path, size and bytes, so a file swapped in with its old size and time still gets
    a fresh export instead of the stale graph)."""
    return content_digest(source)[:16]


def _transformer_folder(source: str) -> str:
    """The folder (or hub name) of the transformer inside a sentence-transformers model; a
    `modules.json` that is not a list of sentence-transformers modules inside `source` is one
    ModelError line (`model_folder.sentence_modules`: it would otherwise load another folder's model)."""
    for m in sentence_modules(source):
        if str(m.get("type", "")).endswith("Transformer"):
            sub = m.get("path") or ""
            return str(Path(source) / sub) if sub else source
    return source


def export_onnx(source: str, out: Path) -> Path:
    """Export transformer + mean pooling + L2 normalisation of `source` to `out` (fp32)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = _transformer_folder(source)
    if Path(source).is_dir():  # code (auto_map, .py) and foreign module classes refused before anything loads
        check_sentence_folder(source)
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
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.onnx")
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
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.onnx")
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_fp32)
    tmp.replace(out)
    return out


def _sidecar(graph: Path) -> Path:
    return graph.with_name(graph.name + ".json")


def _verified(graph: Path, source_sha: str, from_sha: str | None = None) -> bytes | None:
    """The graph's bytes when its sidecar ties it to `source_sha` (and, for the int8 graph, to the
    fp32 graph `from_sha`) and its bytes and tokenizer folder hash as recorded; None otherwise."""
    try:
        meta = json.loads(_sidecar(graph).read_text(encoding="utf-8"))
        if not (isinstance(meta, dict) and meta.get("source_sha256") == source_sha
                and meta.get("from_sha256") == from_sha):
            return None
        data = graph.read_bytes()
    except (OSError, ValueError, RecursionError):
        return None
    if (hashlib.sha256(data).hexdigest() != meta.get("sha256")
            or content_digest(graph.parent / "tokenizer") != meta.get("tokenizer_sha256")):
        return None
    return data


def _seal(graph: Path, source_sha: str, from_sha: str | None = None) -> bytes:
    """Write `graph`'s sidecar (see `OnnxEncoder._graph`); returns the bytes it describes."""
    data = graph.read_bytes()
    meta = {"source_sha256": source_sha, "from_sha256": from_sha, "sha256": hashlib.sha256(data).hexdigest(),
            "tokenizer_sha256": content_digest(graph.parent / "tokenizer")}
    tmp = graph.with_name(f"{graph.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp.replace(_sidecar(graph))
    return data


def _clear_entry(folder: Path) -> None:
    """Remove what an entry that did not check out holds (graphs, sidecars, tokenizer files, a
    link planted in their place), so that the export writes into an empty folder."""
    import shutil

    if folder.is_symlink():
        folder.unlink()
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


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
        self._path: Path | None = None

    def model_path(self) -> Path:
        """Path of the (exported, and if asked quantised) ONNX file, created when missing or when it
        does not check out against its sidecar (see `_graph`)."""
        return self._graph()[0]

    def _graph(self) -> tuple[Path, bytes]:
        """(path, bytes) of the graph to run. The cache is a folder anyone with write access to it
        could fill, so an entry counts only with its sidecar (`model.onnx.json`): the full digest
        of the model folder it was exported from, its own SHA-256 and its tokenizer folder's; a
        graph without one, of other bytes, or of another source (a crafted `model.onnx`, a cut-short
        export) is exported again. The bytes returned are the ones checked (no swap after the check)."""
        source_sha = content_digest(self.source)
        folder = onnx_cache_dir() / f"{Path(self.source).name or 'model'}-{source_sha[:16]}"
        fp32 = folder / "model.onnx"
        data = _verified(fp32, source_sha)
        if data is None:
            _clear_entry(folder)
            export_onnx(self.source, fp32)
            if content_digest(self.source) != source_sha:
                raise ModelError(f"embedding model {self.source} changed while it was exported: refused (run again)")
            data = _seal(fp32, source_sha)
        if not self.quantize:
            return fp32, data
        int8 = folder / "model-int8.onnx"
        fp32_sha = hashlib.sha256(data).hexdigest()
        q = _verified(int8, source_sha, fp32_sha)
        if q is None:
            quantize_onnx(fp32, int8)
            q = _seal(int8, source_sha, fp32_sha)
        return int8, q

    def _load(self) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path, data = self._graph()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        self._path = path
        self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
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
                raise ModelError(f"ONNX model {self._path} gave {vecs.shape} outputs for {len(idx)} texts, "
                                 "or NaN / infinite values: a broken or replaced export (delete it to export again)")
            for j, v in zip(idx, vecs):
                out[j] = v
        return np.stack(out).astype(np.float32) if texts else np.zeros((0, 0), dtype=np.float32)
