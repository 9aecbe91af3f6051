"""Data that the tests and the benchmarks build for themselves: synthetic COCO folders, tiny random VLMs,
small layered shards. Not part of the installed product (pyproject.toml ships curation, stages and
curator_model only); run from a checkout."""
