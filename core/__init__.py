"""The ground floor: data model, store and migrations, audit chain, configs and taxonomy, text
utilities, ingest, and the records every reader agrees on (the prediction of record, the label
of record). It imports nothing from the floors above (`models`, `clustering`, `labeling`,
`evaluation`, `workbench`)."""
