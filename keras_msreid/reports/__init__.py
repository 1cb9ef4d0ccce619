"""Pictures and numbers people can look at: ranked lists, CMC curves, STN attention boxes.

- `ranked_list.draw_ranked_list`, `cmc_plot.plot_cmc`, `attention.draw_attention` and
  `attention.theta_to_boxes` need numpy, OpenCV and matplotlib only.
- `report.write_report` evaluates a model and writes all of them with a metrics
  JSON (the `msreid report` command).

Names are imported on first use, so the drawing modules stay TensorFlow-free.

Example:

```python
from keras_msreid.reports import write_report
write_report("runs/a/report", model, dataset, protocol="market1501")
```
"""

import importlib

_EXPORTS = {
    "draw_ranked_list": "ranked_list",
    "plot_cmc": "cmc_plot",
    "draw_attention": "attention",
    "theta_to_boxes": "attention",
    "draw_attention_pair": "report",
    "write_report": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
