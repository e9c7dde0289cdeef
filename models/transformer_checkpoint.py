"""The transformer's training checkpoint as data: one safetensors file, tensors only, with the step,
loss curve, optimizer settings and schedule as JSON in its header.

It was a `torch.save` pickle read back with `torch.load(weights_only=True)`: a restricted unpickler,
but still an unpickler over a file in a folder others may write to (a shared checkpoints volume),
where the project's rule for model artifacts is "safetensors and JSON, never a pickle". Reading
checks everything against the freshly built model, optimizer and schedule before any of it is
loaded: a checkpoint of another base model under the same path, or an edited one, is one
ModelError line naming the file instead of torch's hundred-line errors mid-training.
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

from .base import ModelError

_STATE_KEY = "state"  # the header metadata entry holding the JSON part


def save_checkpoint(path: Path, fingerprint: str, model: Any, optim: Any, sched: Any, step: int, total: int,
                    losses: list[float]) -> None:
    """Write the checkpoint atomically (a temporary file, then a rename): a run killed while
    writing leaves the previous checkpoint."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    opt = optim.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in opt["state"].items():
        for key, value in entry.items():
            if hasattr(value, "detach"):
                tensors[f"optim/{pid}/{key}"] = value.detach().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {"fingerprint": fingerprint, "step": step, "total": total, "losses": losses, "sched": sched.state_dict(),
            "param_groups": opt["param_groups"], "optim_scalars": scalars}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={_STATE_KEY: json.dumps(meta)})
    tmp.replace(path)


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON state, tensors) of a checkpoint, on the CPU; ModelError for a file that is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = json.loads(meta[_STATE_KEY])
    except Exception as exc:  # noqa: BLE001 - safetensors, json and torch raise several kinds for a bad file
        raise ModelError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {_one_line(exc)}); "
                         "delete it to train from the start") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: unreadable checkpoint (its header is not a checkpoint description); "
                         "delete it to train from the start")
    return state, tensors


def load_checkpoint(path: Path, state: dict[str, Any], tensors: dict[str, Any], model: Any, optim: Any,
                    sched: Any) -> tuple[int, list[float]]:
    """Load a checkpoint read by `read_header` into the fresh `model`, `optim` and `sched` once every
    part matches them; returns (step, losses). ModelError names the file and the first mismatch."""
    def refuse(what: str) -> ModelError:
        return ModelError(f"{path}: checkpoint does not fit this model ({what}); delete it to train from the start")

    step, losses = state.get("step"), state.get("losses")
    if (isinstance(step, bool) or not isinstance(step, int) or step < 0 or not isinstance(losses, list)
            or len(losses) != step or not all(_finite(v) for v in losses)):
        raise refuse(f"step {step!r} and its loss curve are malformed")
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise refuse(f"tensor {name} holds NaN or infinite values")
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    fresh = model.state_dict()
    if set(weights) != set(fresh):
        gaps = sorted(set(weights) ^ set(fresh))
        raise refuse(f"weights {', '.join(gaps[:3])} missing or unknown")
    for k, v in weights.items():
        if tuple(v.shape) != tuple(fresh[k].shape):
            raise refuse(f"weight {k} has shape {tuple(v.shape)}, not {tuple(fresh[k].shape)}")
    template = optim.state_dict()
    groups = state.get("param_groups")
    if not _like(template["param_groups"], groups) or [g["params"] for g in groups] != \
            [g["params"] for g in template["param_groups"]]:
        raise refuse("optimizer settings of another model or version")
    params = {pid: p for g, tg in zip(optim.param_groups, template["param_groups"])
              for pid, p in zip(tg["params"], g["params"])}
    opt_state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("model/"):
            continue
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != "optim" or not parts[1].isdigit() or int(parts[1]) not in params:
            raise refuse(f"unknown tensor {name}")
        pid = int(parts[1])
        want = () if parts[2] == "step" else tuple(params[pid].shape)  # Adam's step count is a scalar
        if tuple(t.shape) != want:
            raise refuse(f"optimizer tensor {name} has shape {tuple(t.shape)}, not {want}")
        opt_state.setdefault(pid, {})[parts[2]] = t
    scalars = state.get("optim_scalars", {})
    if not isinstance(scalars, dict) or not all(k.isdigit() and int(k) in opt_state and isinstance(v, dict)
                                                and all(_finite(x) or isinstance(x, bool) for x in v.values())
                                                for k, v in scalars.items()):
        raise refuse("optimizer scalars are malformed")
    for k, v in scalars.items():
        opt_state[int(k)].update(v)
    sched_state = state.get("sched")
    if not _like(sched.state_dict(), sched_state):
        raise refuse("learning-rate schedule of another kind or version")
    try:
        model.load_state_dict(weights)
        optim.load_state_dict({"state": opt_state, "param_groups": groups})
        sched.load_state_dict(sched_state)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds; the checks above catch the known ones
        raise refuse(f"{type(exc).__name__}: {_one_line(exc)}") from None
    return step, [float(v) for v in losses]


def _like(template: Any, value: Any) -> bool:
    """Whether the JSON `value` has the structure and value types of `template` (a fresh state dict):
    the same keys, list lengths, bools as bools and finite numbers as numbers."""
    if isinstance(template, dict):
        return (isinstance(value, dict) and set(map(str, template)) == set(value)
                and all(_like(v, value[str(k)]) for k, v in template.items()))
    if isinstance(template, (list, tuple)):
        return (isinstance(value, list) and len(value) == len(template)
                and all(_like(t, v) for t, v in zip(template, value)))
    if isinstance(template, bool) or template is None or isinstance(template, str):
        return type(value) is type(template)
    if isinstance(template, numbers.Integral):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(template, numbers.Real):
        return _finite(value)
    return False


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
