"""Fine-tuned transformer kind: AutoModelForSequenceClassification over the policy labels.

Initialised from the bundled MiniLM weights (or any local folder / hub name), trained on CPU
with a plain PyTorch loop (on the GPU when torch sees one, `device: auto`): progress bar,
`max_steps` / `epochs` limits, batches grouped by length (`group_by_length`), and a checkpoint every
`checkpoint_every` steps under `checkpoint_dir`, from which a killed run resumes (the checkpoint
records a fingerprint of the training data, so it is never resumed on different data, and its step
budget: a finished run is continued by a longer one, never stands in for a shorter one). A slice
of the training data is held out to fit a temperature and per-label bias, so its probabilities
are calibrated like the linear kinds'. `preprocess: social` feeds it the hybrid's normalised
text (HTML entities decoded, links and @mentions as placeholders). `init_config` builds a randomly initialised model of the
given (small) architecture instead: the tests use it, and it needs no download.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .base import ModelError, PolicyClassifier, _first_line, checked_temperature, real_array, register_kind
from .calibration import apply_temperature_bias, fit_temperature_bias
from .linear import checked_texts
from .model_folder import check_hf_folder
from .params import PATH, SEED, Check, Interval, Options
from .preprocessing import PREPROCESSORS, social_text
from .training import grouped_holdout
from .transformer_checkpoint import load_checkpoint, read_header, save_checkpoint
from .weights import balanced_weights

HF_DIR = "hf"
CKPT_FILE = "checkpoint.safetensors"  # tensors and JSON only (`transformer_checkpoint`); never a pickle
CALIB_FILE = "calibration.json"

MAX_THREADS = 1024  # torch.set_num_threads overflows past a C int ("Overflow when unpacking long")
_POSITIVE = Interval(numbers.Real, 0, None, closed="neither")
_COUNT = Interval(numbers.Integral, 1, None, closed="left")
# what torch's `.to()` takes here: another string ("gpu") failed only at fit, in torch's words
DEVICE = Check(lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", v) is not None,
               "'auto', 'cpu', 'mps', 'cuda' or 'cuda:<n>'")


@register_kind
class TransformerClassifier(PolicyClassifier):
    """Fine-tunes a BERT-style encoder end to end; slower to train, no n-gram features needed."""

    kind = "transformer"
    _parameter_constraints = {
        "base_model": [None, PATH],
        "init_config": [None, dict],
        "max_steps": [_COUNT],
        "epochs": [_POSITIVE],
        "batch_size": [_COUNT],
        "learning_rate": [_POSITIVE],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "warmup_ratio": [Interval(numbers.Real, 0, 1, closed="both")],
        "max_length": [_COUNT],
        "calibration_fraction": [Interval(numbers.Real, 0, 0.5, closed="left")],
        "class_weight": [None, Options(("balanced",))],
        "preprocess": [None, Options(PREPROCESSORS)],
        "soft_labels": [bool],
        "checkpoint_dir": [None, PATH],
        "checkpoint_every": [_COUNT],
        "eval_batch_size": [_COUNT],
        "device": [DEVICE],
        "torch_threads": [None, Interval(numbers.Integral, 1, MAX_THREADS, closed="both")],
        "group_by_length": [bool],
        "seed": [SEED],
    }

    def __init__(self, labels: Sequence[str], base_model: Optional[str] = None,
                 init_config: Optional[dict[str, Any]] = None, max_steps: int = 400, epochs: float = 1.0,
                 batch_size: int = 16, learning_rate: float = 5e-5, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.06, max_length: int = 64, calibration_fraction: float = 0.1,
                 class_weight: Optional[str] = None, preprocess: Optional[str] = None,
                 soft_labels: bool = False, checkpoint_dir: Optional[str] = None,
                 checkpoint_every: int = 50, eval_batch_size: int = 64, device: str = "auto",
                 torch_threads: Optional[int] = None, group_by_length: bool = True, seed: int = 0) -> None:
        super().__init__(labels)
        self.base_model = base_model
        self.init_config = init_config
        self.max_steps = max_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.max_length = max_length
        self.calibration_fraction = calibration_fraction
        self.class_weight = class_weight
        self.preprocess = preprocess
        self.soft_labels = soft_labels
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.torch_threads = torch_threads
        self.group_by_length = group_by_length
        self.seed = seed
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Optional[str] = None
        self.temperature = 1.0
        self.bias: Optional[np.ndarray] = None

    # -- building ------------------------------------------------------------------------
    @property
    def torch_device(self) -> str:
        """Where the model runs: `device`, with `auto` meaning the GPU when torch sees one."""
        if self._device is None:
            if self.device == "auto":
                import torch

                self._device = "cuda" if torch.cuda.is_available() else "cpu"
            elif self.device.startswith("cuda") and not _cuda_available():
                raise ModelError(f"{self.kind}: device={self.device!r} but torch sees no CUDA GPU; use 'auto' or 'cpu'")
            else:
                self._device = self.device
        return self._device

    def _source(self) -> str:
        if self.base_model:
            return self.base_model
        from .embeddings import default_model_path

        return default_model_path()

    def _build(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        if self.torch_threads:
            torch.set_num_threads(int(self.torch_threads))
        torch.manual_seed(self.seed)
        source = self._source()
        id2label = dict(enumerate(self.labels))
        label2id = {v: k for k, v in id2label.items()}
        try:  # transformers raises many kinds, some pages long, for a bad folder or config: one line here
            self._tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            if self.init_config:  # an empty mapping, like null, means the pretrained weights
                cfg = dict(self.init_config)
                model_type = cfg.pop("model_type", "bert")
                config = AutoConfig.for_model(model_type, vocab_size=self._tokenizer.vocab_size,
                                              num_labels=len(self.labels), id2label=id2label, label2id=label2id, **cfg)
                self._model = AutoModelForSequenceClassification.from_config(config)
            else:
                self._model = AutoModelForSequenceClassification.from_pretrained(
                    source, num_labels=len(self.labels), id2label=id2label, label2id=label2id,
                    ignore_mismatched_sizes=True, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001
            what = "init_config" if self.init_config else f"base_model {source!r}"
            raise ModelError(f"{self.kind}: cannot build the model from {what} "
                             f"({type(exc).__name__}: {_first_line(exc)[:200]})") from exc
        self._check_max_length(source)
        self._model.to(self.torch_device)

    def _check_max_length(self, where: Any) -> None:
        """ModelError when `max_length` exceeds the model's position embeddings: every text longer
        than those then fails deep in torch ("size of tensor a (402) must match ... (128)"), and
        one long text stops its whole batch."""
        limit = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise ModelError(f"{where}: {self.kind} max_length={self.max_length} exceeds the model's {limit} "
                             f"positions: set max_length <= {limit}")

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        # a lone surrogate ("\\ud800" in JSON) is no UTF-8: the tokenizer refuses the whole batch for it
        texts = [_valid_unicode(t) for t in texts]
        if self.preprocess == "social":  # links and @mentions as one token each: more room for the words
            return [social_text(t) for t in texts]
        return texts

    def _batch(self, texts: Sequence[str]) -> dict[str, Any]:
        enc = self._tokenizer(self._prepare(texts), truncation=True, max_length=self.max_length, padding=True,
                              return_tensors="pt")
        return {k: v.to(self.torch_device) for k, v in enc.items()}

    def _token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text after truncation: what a padded batch costs."""
        enc = self._tokenizer(self._prepare(texts), truncation=True, max_length=self.max_length)
        return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: Sequence[str], embeddings: np.ndarray | None = None,
            show_progress: bool = False, targets: np.ndarray | None = None) -> "TransformerClassifier":
        import torch
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        self._validate_params()
        self.is_fitted = False  # until this fit ends: a failed refit leaves no half-trained model to score with
        texts = checked_texts(texts, self.kind)
        yi = self._encode_labels(y)
        if len(yi) != len(texts):
            raise ModelError(f"{self.kind}: got {len(yi)} labels for {len(texts)} texts")
        soft = self._soft_targets(targets, len(yi))
        ckpt = Path(self.checkpoint_dir) / CKPT_FILE if self.checkpoint_dir else None
        if ckpt is not None:  # checked before training, not when the first checkpoint is written
            _check_checkpoint_path(ckpt)
        self._build()
        self.decision_weights = np.ones(len(self.labels))
        if self.calibration_fraction > 0:
            train_idx, cal_idx = grouped_holdout(texts, yi.tolist(), self.calibration_fraction, self.seed)
        else:
            train_idx, cal_idx = np.arange(len(yi)), np.arange(0)
        n = len(train_idx)
        steps_per_epoch = max(1, math.ceil(n / self.batch_size))
        total = int(min(self.max_steps, math.ceil(steps_per_epoch * self.epochs)))
        optim = torch.optim.AdamW(self._model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        sched = get_linear_schedule_with_warmup(optim, int(total * self.warmup_ratio), total)
        weight = None
        if self.class_weight == "balanced":
            w = balanced_weights(np.bincount(yi[train_idx], minlength=len(self.labels)))
            weight = torch.tensor(w, dtype=torch.float32, device=self.torch_device)
        # With soft targets the loss is the cross-entropy to each item's vote distribution.
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        fingerprint = _fingerprint(texts, yi, {**self.typed_params(), "init_config": self.init_config or None}, soft)
        step, losses = 0, []
        resumed_from = None
        if ckpt is not None and ckpt.is_file():
            state, tensors = read_header(ckpt)  # a checkpoint is data, never code: no unpickling at all
            if state.get("fingerprint") == fingerprint and _resumable(state, total):
                step, losses = load_checkpoint(ckpt, state, tensors, self._model, optim, sched)
                resumed_from = step
        # Batches of similar length pad less: 2.4x fewer seconds per step on Davidson's tweets.
        lengths = self._token_lengths([texts[i] for i in train_idx]) if self.group_by_length else None
        order = _epoch_order(n, self.seed, step, self.batch_size, lengths)
        self._model.train()
        loop_started, start_step = time.perf_counter(), step
        bar = tqdm(total=total, initial=step, desc="fine-tuning transformer", unit="step",
                   disable=not show_progress, leave=False)
        while step < total:
            batch_pos = next(order)
            idx = train_idx[batch_pos]
            inputs = self._batch([texts[i] for i in idx])
            logits = self._model(**inputs).logits
            target = (torch.as_tensor(soft[idx], dtype=torch.float32, device=self.torch_device) if soft is not None
                      else torch.as_tensor(yi[idx], device=self.torch_device))
            loss = loss_fn(logits, target)
            if not bool(torch.isfinite(loss)):  # before the step and the checkpoint: NaN weights are never kept
                raise ModelError(f"{self.kind}: training diverged at step {step + 1} (loss {loss.item()}); "
                                 f"lower learning_rate (now {self.learning_rate!r})")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self._model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if ckpt is not None and (step % self.checkpoint_every == 0 or step == total):
                save_checkpoint(ckpt, fingerprint, self._model, optim, sched, step, total, losses)
        bar.close()
        seconds_per_step = (time.perf_counter() - loop_started) / max(step - start_step, 1)
        self._model.eval()
        self.temperature, self.bias = 1.0, np.zeros(len(self.labels))
        self.is_fitted = True
        if len(cal_idx):
            logits = self._logits([texts[i] for i in cal_idx])
            present = np.unique(yi[cal_idx])
            if len(present) >= 2:
                self.temperature, self.bias = fit_temperature_bias(logits[:, present], yi[cal_idx], present,
                                                                   len(self.labels))
        self.fit_info = {"n_train": int(n), "n_calibration": int(len(cal_idx)), "steps": int(step),
                         "soft_targets": soft is not None,
                         "total_steps": total, "resumed_from": resumed_from,
                         "seconds_per_step": round(seconds_per_step, 3), "loss_first": float(np.mean(losses[:10])) if losses else None,
                         "loss_last": float(np.mean(losses[-10:])) if losses else None,
                         "loss_curve": [float(np.mean(losses[i:i + 10])) for i in range(0, len(losses), 10)],
                         "temperature": float(self.temperature)}
        return self

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not len(texts):
            return np.zeros((0, len(self.labels)))
        # Scored shortest first so that each batch pads to a length near its own; put back in order.
        order = np.argsort(self._token_lengths(texts), kind="stable")
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.eval_batch_size):
                chunk = [texts[j] for j in order[i:i + self.eval_batch_size]]
                out.append(self._model(**self._batch(chunk)).logits.float().cpu().numpy())
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        logits[order] = np.concatenate(out)
        return logits

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        texts = checked_texts(texts, self.kind)
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self._checked_proba(apply_temperature_bias(self._logits(texts).astype(np.float64), self.temperature,
                                                          self._bias()), len(texts))

    def _bias(self) -> np.ndarray:
        return np.zeros(len(self.labels)) if self.bias is None else self.bias

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        self._model.save_pretrained(folder / HF_DIR)
        self._tokenizer.save_pretrained(folder / HF_DIR)
        (folder / CALIB_FILE).write_text(json.dumps({"temperature": float(self.temperature),
                                                     "bias": self._bias().tolist()}))

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        super()._load_state(folder, meta)
        if not (folder / HF_DIR).is_dir():
            raise ModelError(f"{folder}: transformer weights folder {HF_DIR}/ is missing")
        if not (folder / CALIB_FILE).is_file():
            raise ModelError(f"{folder}: transformer calibration {CALIB_FILE} is missing")
        try:
            calib = json.loads((folder / CALIB_FILE).read_text())
            temperature, bias = calib["temperature"], calib["bias"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ModelError(f"{folder}: unreadable {CALIB_FILE} ({exc})") from None
        self.temperature = checked_temperature(temperature, f"{folder}: {CALIB_FILE} temperature")
        self.bias = real_array(bias, f"{folder}: {CALIB_FILE} calibration bias", (len(self.labels),))
        hf = folder / HF_DIR
        check_hf_folder(hf)
        try:  # the libraries raise many kinds for a malformed file: each is one line here
            self._tokenizer = AutoTokenizer.from_pretrained(hf, trust_remote_code=False, local_files_only=True)
            # safetensors only: a pickled pytorch_model.bin in the folder is never read.
            model, info = AutoModelForSequenceClassification.from_pretrained(
                hf, use_safetensors=True, trust_remote_code=False, local_files_only=True, output_loading_info=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{folder}: the transformer in {HF_DIR}/ cannot be loaded "
                             f"({type(exc).__name__}: {_first_line(exc)})") from None
        self._model = model
        self._check_loaded(folder, info)
        self._check_max_length(folder)
        self._model = self._model.to(self.torch_device).eval()

    def _check_loaded(self, folder: Path, info: dict[str, Any]) -> None:
        """Refuse a loaded transformer whose weights would give silently wrong scores: weights missing
        from the file or of another shape (transformers fills them in at random and only logs it),
        another label list than the model's, or a NaN or infinite parameter."""
        gaps = sorted(info.get("missing_keys") or []) + sorted(str(k[0]) for k in info.get("mismatched_keys") or [])
        if gaps or info.get("error_msgs"):
            raise ModelError(f"{folder}: {HF_DIR}/ weights missing or of the wrong shape: "
                             f"{', '.join(gaps[:5]) or _first_line(Exception(*info['error_msgs']))}: refused")
        cfg = self._model.config
        saved = [cfg.id2label.get(i, cfg.id2label.get(str(i))) for i in range(cfg.num_labels)]
        if saved != self.labels:
            raise ModelError(f"{folder}: {HF_DIR}/config.json labels {saved} are not the model's {self.labels}")
        for name, tensor in self._model.state_dict().items():
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise ModelError(f"{folder}: {HF_DIR}/ weight {name} holds NaN or infinite values: refused")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _valid_unicode(text: str) -> str:
    """`text` with lone surrogates as U+FFFD (valid text unchanged), so the tokenizer can encode it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_checkpoint_path(ckpt: Path) -> None:
    """ModelError when the checkpoint cannot be written where asked (`checkpoint_dir` a file, the
    checkpoint a folder): found before training, not when the first checkpoint is due."""
    if ckpt.parent.exists() and not ckpt.parent.is_dir():
        raise ModelError(f"{ckpt.parent}: checkpoint_dir is not a folder")
    if ckpt.exists() and not ckpt.is_file():
        raise ModelError(f"{ckpt}: the checkpoint is not a plain file; remove it or pick another checkpoint_dir")


def _epoch_order(n: int, seed: int, start_step: int, batch_size: int,  # type: ignore[no-untyped-def]
                 lengths: np.ndarray | None = None, group: int = 50):
    """Batches of positions, a fresh seeded permutation per epoch, starting at `start_step`
    (so a resumed run sees exactly the batches the uninterrupted run would have). With `lengths`,
    each run of `group` batches of the permutation is sorted by length before it is cut into
    batches, and the epoch's batches are then shuffled (as transformers' LengthGroupedSampler):
    every batch holds texts of about one length, and the epoch still visits every text once."""
    per_epoch = max(1, math.ceil(n / batch_size))
    step = start_step
    epoch_seen, batches = -1, []
    while True:
        epoch, b = divmod(step, per_epoch)
        if epoch != epoch_seen:
            rng = np.random.default_rng(seed + epoch)
            perm = rng.permutation(n)
            if lengths is not None:
                mega = batch_size * group
                perm = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                       for chunk in np.array_split(perm, range(mega, n, mega))])
            batches = [perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)]
            if lengths is not None:
                batches = [batches[i] for i in rng.permutation(per_epoch)]
            epoch_seen = epoch
        yield batches[b]
        step += 1


def _resumable(state: dict[str, Any], total: int) -> bool:
    """Whether a checkpoint of the same data and parameters continues a run of `total` steps: its
    step is within the budget, and it is either the same schedule cut short (a killed run) or a
    finished run that this longer one trains on. A run past `total`, or killed under another step
    budget (its learning-rate schedule is another), is trained again from the start."""
    step, saved_total = state.get("step"), state.get("total")
    if not isinstance(step, int) or step > total:
        return False
    if saved_total is None:  # written before checkpoints kept their budget: the step bound only
        return True
    return saved_total == total or step == saved_total


def _fingerprint(texts: Sequence[str], y: np.ndarray, params: dict[str, Any],
                 targets: np.ndarray | None = None) -> str:
    h = hashlib.sha256()
    for t, label in zip(texts, y.tolist()):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(f"\x00{label}\x01".encode())
    if targets is not None:
        h.update(np.round(targets, 6).astype(np.float64).tobytes())
    # max_steps / epochs are left out so a finished run can be resumed to train for longer; the
    # checkpoint's step and total keep it from serving a shorter run (`_resumable`).
    skip = ("checkpoint_dir", "device", "max_steps", "epochs", "eval_batch_size", "checkpoint_every", "torch_threads")
    # Parameters added later count only when set, so checkpoints written before them still resume.
    unset_later = {"preprocess": None, "soft_labels": False, "group_by_length": False}
    h.update(json.dumps({k: v for k, v in params.items()
                         if k not in skip and not (k in unset_later and v == unset_later[k])},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()
