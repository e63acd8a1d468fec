"""The operator's command line: `pressroom run`, `ingest`, `worker`, `scheduler`, and tools."""
