"""Classifiers that pre-score every item, their registry and batch scoring.

- `embeddings`: sentence embeddings (bundled all-MiniLM-L6-v2) with a text-hash cache;
  `onnx_runtime`: the same vectors on ONNX Runtime (fp32, or int8 for speed).
- `base`: the one estimator interface (fit / predict_proba over the taxonomy's labels /
  save / load, uncertainty, parameter validation) and the registry dict; `kinds`: every kind
  registered, and `kind_names` / `kind_class` / `make_classifier` / `load_classifier`.
  Kinds: `linear`: `hybrid` (default), `tfidf_lr`, `minilm_lr`; `nblr`: naive-Bayes-weighted
  n-grams; `transformer`: fine-tuned AutoModelForSequenceClassification; `ensemble`: a blend.
  Shared by the kinds: `params` (parameter constraints), `calibration` (temperature / bias,
  decision weights), `preprocessing` (`social_text`), `weights` (balanced class weights).
  Saved models are data only (JSON, .npz without pickles, safetensors).
- `training`: (texts, labels) from the store (human decisions over source labels), seeded
  stratified splits, data fingerprints; `metrics`: pure functions (ECE, F1, MCC, uncertainty,
  reliability diagram).
- `registry`: train / list / show / promote / retire versions, one champion, audited;
  `scoring`: resumable batch scoring into `predictions`; `cli`, `demo`: the thin outer layer.

Settings live in configs/models.yaml (`config`).
"""
