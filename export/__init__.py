"""TFLite export of MSReID models: conversion, validation and a numpy-only runtime.

- `export.convert`: `.keras` model -> `extractor_<mode>.tflite`, `scorer_<mode>.tflite`
  and `metadata.json` (needs TensorFlow).
- `export.validate`: Keras against every exported mode on an evaluation split.
- `export.runtime`: runs an export with the LiteRT interpreter; TensorFlow-free,
  for the device.
- `export.op_check`, `export.threshold`: op lists and the match threshold.

Nothing is imported here, so `import export.runtime` does not load TensorFlow.
See export/README.md for the file format.
"""
