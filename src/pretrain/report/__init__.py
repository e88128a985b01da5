"""The run report: pictures of every stage's figures, viewable with no network.

- ``figures.py``: the PNG figures (matplotlib) from the metrics files and DVCLive's curves.
- ``page.py``: ``metrics/report.md`` and ``metrics/report.html`` linking them, and the offline
  page template of ``dvc plots show`` (Vega inlined from vl-convert-python).
"""
