"""The human side of the loop: queues, claims, decisions, appeals, packets, export.

Modules, one concern each (imports only go down this list):
- `errors`: LabelingError, QueueError (claims, queues), DecisionError (decisions, appeals);
- `queue_config`, `review_config`: `configs/queues.yaml` and `configs/review.yaml`, validated;
- `priority` and `sampling`: pure functions (priority terms, SLA urgency; the uniform QA-audit
  and calibration draws blind to the model);
- `routing`: the case a scored item or a campaign becomes (queue, severity, due time, priority);
- `cases`: building and reading cases; `suggestion`, what the model suggests for a case;
- `claims`: atomic claims with leases, release, skip; `escalation`: escalate and the SLA sweep;
- `decisions`: decide, bulk-decide a campaign, correct; `appeals`: file and resolve appeals;
- `masking`: how text is masked; `packets`: the review and escalation packets;
- `export`: the labels as a Hugging Face dataset.
The label of record (which decision counts) and the prediction of record live in `core`.
"""
