"""``imgnet report DIR``: a self-contained ``report.html`` and PNG figures for a run directory.

``collect``  find and read what a run left in DIR (run.json, manifest.parquet, the shard
             directory's dataset.json, bench results), each through its schema-checked reader.
``votes``    the crowd-votes sections (votes per synset, P(yes) histogram, workers), shown only
             when the run has a votes table.
``figures``  bar charts and thumbnail strips drawn with PIL ImageDraw (pillow-simd; no matplotlib,
             which would pull the ``pillow`` wheel over pillow-simd).
``build``    ``ReportParams`` / ``report`` / ``outputs_complete`` (the recipe stage contract):
             figures as PNG files, the HTML with every figure embedded as a base64 data URI so it
             opens offline, and ``report.json`` (schema ``report``) recording the sources used.
"""
