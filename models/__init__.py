"""Classifiers that pre-score every item, their registry and batch scoring.

- `embeddings`: sentence embeddings (bundled all-MiniLM-L6-v2) with a text-hash cache;
  `onnx_runtime`: the same vectors on ONNX Runtime (fp32, or int8 for speed).
- `base`: the one estimator interface (fit / predict_proba over the taxonomy's labels /
  save / load, uncertainty) and the kind registry; `linear`: `hybrid` (default), `tfidf_lr`,
  `minilm_lr`; `transformer`: fine-tuned AutoModelForSequenceClassification.
- `training`: (texts, labels) from the store (human decisions over source labels), seeded
  stratified splits, data fingerprints; `metrics`: pure functions (ECE, F1, MCC, uncertainty,
  reliability diagram).
- `registry`: train / list / show / promote / retire versions, one champion, audited;
  `scoring`: resumable batch scoring into `predictions`; `cli`, `demo`: the thin outer layer.

Settings live in configs/models.yaml (`config`).
"""
