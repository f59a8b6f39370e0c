"""Reports: read logged runs and studies, build comparison tables, ablation statistics and plots.

Only reads: ``build_report(tracking_uri, out, ...)`` never trains or
recomputes a metric.
"""

from reports.build import BuildResult, build_report

__all__ = ["BuildResult", "build_report"]
