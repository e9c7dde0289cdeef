"""What a model folder read from outside may hold, and what it hashes to.

`content_digest` is the one digest of a model folder (the embedding cache key, the ONNX export
cache, the embedding pin of a registered version): every file's relative path, size and bytes,
since weights, configs and tokenizer files all change the vectors; never names and times alone,
which a file swapped in at its old size and modification time keeps. Hashing the 90 MB MiniLM
folder takes about 0.1 s, so a digest is remembered per process, keyed by each file's (size,
mtime, ctime, inode, device): a folder is hashed once per process unless a file changes. A file
changed within the last `_RACY_NS` is hashed every time (as git does for racy index entries):
the kernel's coarse clock can give two writes in one tick the same ctime.

`check_hf_folder` refuses a transformers folder that holds code (a `.py` file, a config's
`auto_map`), oversized side files or non-float weights; `check_sentence_folder` adds the
sentence-transformers `modules.json` rules (module classes of sentence-transformers only, module
folders inside the model folder) and refuses pickled weights (`pytorch_model.bin`), which
sentence-transformers would read where no safetensors file is.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from .base import ModelError, _first_line

MAX_HF_FILE_BYTES = 64 << 20  # any file beside the weights (tokenizers of large vocabularies are ~20 MB)
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
# pickle formats (torch.save, joblib): sentence-transformers reads a pytorch_model.bin where no
# safetensors file is, unchecked by the dtype rule (integer weights give zero vectors), by unpickling
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
_RACY_NS = 2 * 10**9
_MEMO: dict[tuple[Any, ...], str] = {}
_MEMO_LOCK = threading.Lock()


def _now_ns() -> int:
    return time.time_ns()


def digest_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of the files a folder's digest covers, sorted: every file
    except hidden ones (.git, .gitattributes) and documentation (*.md), which change no vector."""
    out = []
    for f in folder.rglob("*"):
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or f.suffix.lower() == ".md" or not f.is_file():
            continue
        out.append((rel.as_posix(), f))
    return sorted(out)


def content_digest(source: str | Path) -> str:
    """Hex SHA-256 of a model folder's contents (see the module doc); of the name itself when
    `source` is no folder (a hub name). The folder's path is not part of it: a copy elsewhere
    gives the same vectors."""
    folder = Path(source)
    if not folder.is_dir():
        return hashlib.sha256(f"name:{source}".encode("utf-8", "surrogateescape")).hexdigest()
    files = digest_files(folder)
    stats = [(rel, f.stat()) for rel, f in files]
    key = (str(folder.resolve()), tuple((rel, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev)
                                        for rel, s in stats))
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    digest = _hash_files(files)
    settled = _now_ns() - _RACY_NS
    if all(s.st_ctime_ns < settled and s.st_mtime_ns < settled for _, s in stats):
        with _MEMO_LOCK:
            _MEMO[key] = digest
    return digest


def _hash_files(files: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for rel, f in files:
        with f.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            h.update(f"{rel}\0{size}\0".encode("utf-8", "surrogateescape"))
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def check_hf_folder(hf: Path, int_buffers: tuple[str, ...] = ()) -> None:
    """Refuse a saved transformer folder before transformers reads it: code of its own (a `.py` file,
    an `auto_map` in a config, which `trust_remote_code` would run), a tokenizer or config file
    too large to be one, or weights that are not floating point (integers load silently, as zeros).
    `int_buffers`: tensor names ending so may be integers (the `position_ids` index buffer that
    hub checkpoints such as all-MiniLM-L6-v2 carry; no weight is named so)."""
    from safetensors import safe_open

    for p in sorted(hf.rglob("*")):
        rel = p.relative_to(hf).as_posix()
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise ModelError(f"{hf}: {rel} is a link or special file: refused")
        if p.suffix in (".py", ".pyc", ".so"):
            raise ModelError(f"{hf}: {rel} is code: a saved model is data only, refused")
        if p.is_dir() or p.suffix == ".safetensors":
            continue
        if p.stat().st_size > MAX_HF_FILE_BYTES:
            raise ModelError(f"{hf}: {rel} has {p.stat().st_size} bytes (over {MAX_HF_FILE_BYTES}): refused")
        if p.suffix == ".json":
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise ModelError(f"{hf}: unreadable {rel} ({_first_line(exc)})") from None
            if isinstance(doc, dict) and "auto_map" in doc:
                raise ModelError(f"{hf}: {rel} names code to run (auto_map): refused")
    for p in sorted(hf.glob("*.safetensors")):
        try:
            with safe_open(str(p), framework="np") as f:
                odd = sorted({f.get_slice(k).get_dtype() for k in f.keys()
                              if not (int_buffers and k.endswith(int_buffers))} - _FLOAT_DTYPES)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own kind for a bad file
            raise ModelError(f"{hf}: unreadable {p.name} ({type(exc).__name__}: {_first_line(exc)})") from None
        if odd:
            raise ModelError(f"{hf}: {p.name} holds {', '.join(odd)} tensors, not floating-point weights: refused")


_ST_PREFIX = "sentence_transformers."
_INT_BUFFERS = (".position_ids",)


def sentence_modules(source: str | Path) -> list[dict[str, Any]]:
    """The modules a sentence-transformers folder lists in `modules.json` ([] without one), once
    each is a sentence-transformers class (another dotted name is an import of anything installed)
    whose folder lies inside `source`; one ModelError line otherwise."""
    modules = Path(source) / "modules.json"
    if not modules.is_file():
        return []
    try:
        listed = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"{modules}: unreadable ({_first_line(exc)})") from None
    if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
        raise ModelError(f"{modules}: not a list of modules")
    root = Path(source).resolve()
    for m in listed:
        kind, sub = m.get("type"), m.get("path") or ""
        if not isinstance(kind, str) or not kind.startswith(_ST_PREFIX):
            raise ModelError(f"{modules}: module type {str(kind)[:80]!r} is not a sentence-transformers class: refused")
        if not isinstance(sub, str):
            raise ModelError(f"{modules}: the module path {sub!r} is not a folder name")
        target = (root / sub).resolve()
        if target != root and root not in target.parents:
            raise ModelError(f"{modules}: the module path {sub!r} leads outside {source}: refused")
    return listed


def check_sentence_folder(source: str | Path) -> None:
    """Refuse a sentence-transformers folder before it is loaded: `sentence_modules`' rules, then
    `check_hf_folder`'s over the whole folder (its module folders included; an integer
    `position_ids` buffer allowed), and no pickled weights anywhere in it (the transformer kind
    loads with `use_safetensors=True`, so only here would one be read)."""
    sentence_modules(source)
    for p in sorted(Path(source).rglob("*")):
        if p.suffix.lower() in _PICKLE_SUFFIXES:
            raise ModelError(f"{source}: {p.relative_to(source).as_posix()} is a pickle (read by unpickling it): "
                             "weights are safetensors only, refused")
    check_hf_folder(Path(source), int_buffers=_INT_BUFFERS)
