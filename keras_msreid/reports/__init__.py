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

from keras_msreid.utils.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "draw_ranked_list": "ranked_list",
    "plot_cmc": "cmc_plot",
    "draw_attention": "attention",
    "theta_to_boxes": "attention",
    "draw_attention_pair": "report",
    "write_report": "report",
})
