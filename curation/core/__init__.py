"""The core every other part builds on: the row schema and reject reasons, the run config, the ``Stage``
contract, image I/O, compositing, mask geometry, the one layer decomposition and its fills, devices,
backend registries, synthetic scenes and the bundled photos.

It imports nothing else of the project (``tests/test_architecture.py`` holds it to that), so stages,
the curator model and the app can all depend on it without a cycle.
"""
