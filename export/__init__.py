"""TFLite export of MSReID models: conversion and validation (installed as `keras_msreid.export`).

- `export.convert`: `.keras` model -> `extractor_<mode>-<hash>.tflite`,
  `scorer_<mode>-<hash>.tflite` and `metadata.json` (needs TensorFlow).
- `export.validate`: Keras against every exported mode on an evaluation split
  (`msreid validate`).
- `export.op_check`, `export.threshold`: op lists and the match threshold.

An export is read and run by the edge demo's runtime (`edge_demo.litert`,
`edge_demo.reid_models`), the one the device uses: TensorFlow-free, one
quantization, one reader of `metadata.json`. Nothing is imported here, so
`import keras_msreid.export.threshold` does not load TensorFlow. See export/README.md for the
file format.
"""
