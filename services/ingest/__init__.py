"""The ingest API: takes articles by webhook, answers at once, queues the pipeline."""
