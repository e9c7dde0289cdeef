"""Scoring benchmark: `score_items` throughput as a ratio to plain `SentenceTransformer.encode`.

Two streams of N items (default 20,000) go into a fresh store under benchmarks/.cache/:

- `unique`: N distinct texts from the shared datasets (SMS + Davidson);
- `waves`: the SMS collection once, then copies of its spam messages in waves (wave sizes drawn
  from a Zipf law, copies varying in case and spacing as template blasts do) up to N items.

For each stream the baseline is `SentenceTransformer(model).encode(texts)` with its defaults
except `max_seq_length`, which is set to the pipeline embedder's (`embedding.max_seq_length` of
configs/models.yaml) so both sides truncate alike, in this process, on the same texts; the pipeline is the champion (a `hybrid` model trained before on
a separate labelled sample, not timed) scoring the stream end to end: reading items, embedding
through the text-hash cache (cold at the start), the head, and writing Prediction rows. The two
run in interleaved blocks (baseline first, then pipeline first, ...) so that the load of other
jobs on the shared cores drifts onto both sides alike. The stretch run repeats the unique stream
with the int8 ONNX Runtime embedder and reports its cosine to the fp32 vectors.

Prints one JSON line (progress goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from models.config import load_models_config  # noqa: E402
from models.embeddings import Embedder, default_model_path  # noqa: E402
from models.registry import train_model  # noqa: E402
from models.scoring import score_items  # noqa: E402
from models.training import TrainingSet  # noqa: E402
from core.schema import Embedding, Item  # noqa: E402
from core.sources import load_labelled  # noqa: E402
from core.store import open_store  # noqa: E402
from core.taxonomy import load_taxonomy  # noqa: E402
from core.text import text_hash  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
TARGETS = {"unique_ratio": 1.0, "waves_ratio": 3.0, "onnx_unique_ratio": 1.5, "onnx_cosine_mean": 0.99}


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def wave_stream(sms_texts: list[str], spam_texts: list[str], n: int, rng: random.Random) -> list[str]:
    """The SMS collection once, then waves of spam copies (Zipf sizes, case/spacing variants)."""
    out = list(sms_texts)
    while len(out) < n:
        base = rng.choice(spam_texts)
        size = min(int(np.random.default_rng(rng.randrange(1 << 30)).zipf(1.6)), 400)
        for _ in range(size):
            variant = base.upper() if rng.random() < 0.2 else base
            if rng.random() < 0.3:
                variant = variant.replace(" ", "  ", 1)
            out.append(variant)
    out = out[:n]
    rng.shuffle(out)
    return out


def fresh_store(name: str):
    folder = CACHE / name
    shutil.rmtree(folder, ignore_errors=True)
    return open_store(folder)


def load_items(store, texts: list[str], prefix: str) -> None:
    from sqlalchemy import insert

    rows = [{"id": f"{prefix}:{i:06d}", "source": prefix, "surface": "sms", "text": t, "text_hash": text_hash(t)}
            for i, t in enumerate(texts)]
    with store.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(Item.__table__), rows[i:i + 5000])


def clear_embeddings(store) -> None:
    from sqlalchemy import delete

    with store.begin() as conn:
        conn.execute(delete(Embedding.__table__))


def interleaved_rates(texts: list[str], st, pipelines: dict[str, tuple], tax, cfg, model, version: str,
                      blocks: int) -> dict:
    """The baseline and each pipeline over the same texts in `blocks` turns whose order rotates,
    so that a change in machine load (2 cores shared with other jobs) hits every side alike.

    `pipelines` maps a name to (store, embedder); each store gets the texts as items (ids sort in
    stream order, so each turn scores exactly one block) and a cold embedding cache.
    """
    for store, embedder in pipelines.values():
        load_items(store, texts, "stream")
        clear_embeddings(store)
        embedder.encode(texts[:64])  # warm-up: model load is not what we compare
    st.encode(texts[:64])
    size = -(-len(texts) // blocks)
    sides = ["baseline", *pipelines]
    seconds = dict.fromkeys(sides, 0.0)
    counts = {name: {"embeddings_encoded": 0, "embeddings_cached": 0} for name in pipelines}
    for b in range(blocks):
        block = texts[b * size:(b + 1) * size]
        for side in sides[b % len(sides):] + sides[:b % len(sides)]:
            t0 = time.perf_counter()
            if side == "baseline":
                st.encode(block)
            else:
                store, embedder = pipelines[side]
                summary = score_items(store, tax, model_version=version, model=model, config=cfg,
                                      embedder=embedder, limit=len(block), show_progress=False)
                if summary.scored != len(block):
                    raise SystemExit(f"{side}: scored {summary.scored} of {len(block)} items")
                counts[side]["embeddings_encoded"] += summary.embeddings_encoded
                counts[side]["embeddings_cached"] += summary.embeddings_cached
            seconds[side] += time.perf_counter() - t0
        log(f"  block {b + 1}/{blocks}: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    n = len(texts)
    out = {"baseline_seconds": round(seconds["baseline"], 1),
           "baseline_items_per_s": round(n / seconds["baseline"], 1)}
    for name in pipelines:
        out[name] = {"pipeline_seconds": round(seconds[name], 1), "pipeline_items_per_s": round(n / seconds[name], 1),
                     "ratio": round(seconds["baseline"] / seconds[name], 3), **counts[name]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="Items per stream.")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--skip-onnx", action="store_true", help="Skip the ONNX Runtime stretch run.")
    ap.add_argument("--blocks", type=int, default=4, help="Interleaved baseline/pipeline turns per stream.")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cfg = load_models_config()
    tax = load_taxonomy()

    sms, dav = load_labelled("sms_spam", taxonomy=tax), load_labelled("davidson", taxonomy=tax)
    pool: dict[str, str] = {}
    for t in list(sms["text"]) + list(dav["text"]):
        pool.setdefault(text_hash(t), t)
    distinct = list(pool.values())
    rng.shuffle(distinct)
    train_n = 3000
    train_pool, unique = distinct[:train_n], distinct[train_n:train_n + args.n]
    if len(unique) < args.n:
        raise SystemExit(f"only {len(unique)} distinct texts available for --n {args.n}")
    spam = [t for t, lab in zip(sms["text"], sms["source_label"]) if lab == "spam"]
    waves = wave_stream(list(sms["text"]), spam, args.n, rng)

    # The champion: a hybrid model trained on a labelled sample outside the timed streams.
    labelled = {text_hash(t): lab for t, lab in zip(list(sms["text"]) + list(dav["text"]),
                                                    list(sms["policy_label"]) + list(dav["policy_label"]))}
    data = TrainingSet([f"train:{i}" for i in range(train_n)], train_pool,
                       [labelled[text_hash(t)] for t in train_pool], ["source"] * train_n)
    store = fresh_store("scoring-store")
    log(f"training the champion on {train_n} labelled texts (not timed)")
    row = train_model(store, tax, kind="hybrid", config=cfg, data=data, promote_if="always", actor="benchmark",
                      show_progress=True)
    version = row["id"]
    embedder = Embedder(max_seq_length=cfg.embedding.max_seq_length, batch_size=cfg.embedding.batch_size)

    from sentence_transformers import SentenceTransformer

    from models.registry import load_model_version

    model, _ = load_model_version(store, version)
    st = SentenceTransformer(default_model_path(), device="cpu")  # plain: its own defaults, except ...
    st.max_seq_length = embedder.max_seq_length  # ... the pipeline's truncation (models.yaml), so both encode the same tokens
    result: dict = {"benchmark": "scoring", "n": args.n, "model": version, "blocks": args.blocks,
                    "baseline": f"SentenceTransformer(all-MiniLM-L6-v2).encode, default settings except "
                                f"max_seq_length={st.max_seq_length} (the pipeline embedder's)",
                    "max_seq_length": embedder.max_seq_length, "streams": {}}
    unique_sides = {"torch": (fresh_store("scoring-unique"), embedder)}
    if not args.skip_onnx:
        onnx = Embedder(max_seq_length=cfg.embedding.max_seq_length, batch_size=cfg.embedding.batch_size,
                        runtime="onnx-int8")
        onnx.encode(unique[:8])  # export + quantise once (cached), outside the timing
        unique_sides["onnx_int8"] = (fresh_store("scoring-unique-onnx"), onnx)
    for name, texts, sides in (("unique", unique, unique_sides),
                               ("waves", waves, {"torch": (fresh_store("scoring-waves"), embedder)})):
        log(f"[{name}] baseline vs score_items ({', '.join(sides)}) on {len(texts)} texts, {args.blocks} blocks")
        rates = interleaved_rates(texts, st, sides, tax, cfg, model, version, args.blocks)
        result["streams"][name] = {"distinct_texts": len({text_hash(t) for t in texts}), **rates}
        log(f"[{name}] " + json.dumps(result["streams"][name]))
    if not args.skip_onnx:
        sample = unique[:2000]
        cos = np.sum(onnx.encode(sample) * embedder.encode(sample), axis=1)
        result["streams"]["unique"]["onnx_int8"].update({
            "cosine_to_fp32_mean": round(float(cos.mean()), 4), "cosine_to_fp32_min": round(float(cos.min()), 4),
            "cosine_to_fp32_p01": round(float(np.percentile(cos, 1)), 4),
            "note": "quality with int8 embeddings: benchmarks/quality.py --runtime onnx-int8"})

    result["targets"] = {}
    s = result["streams"]
    got = {"unique_ratio": s["unique"]["torch"]["ratio"], "waves_ratio": s["waves"]["torch"]["ratio"]}
    if "onnx_int8" in s["unique"]:
        got.update({"onnx_unique_ratio": s["unique"]["onnx_int8"]["ratio"],
                    "onnx_cosine_mean": s["unique"]["onnx_int8"]["cosine_to_fp32_mean"]})
    for key, target in TARGETS.items():
        if key in got:
            result["targets"][key] = {"target": target, "value": got[key], "met": bool(got[key] >= target),
                                      **({"stretch": True} if key.startswith("onnx") else {})}
    result["all_met"] = all(v["met"] for v in result["targets"].values())
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
