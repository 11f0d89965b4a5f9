"""The variant report as a PNG: quality against latency, one point per variant, at batch 1 and at the largest
batch (per sample), so the trade-off between a faster variant and its answers is one look."""

import io
from typing import Any

from app.variants.report import ModelReport


class PlottingUnavailable(Exception):
    """matplotlib is not installed (the ``report`` extra)."""


def plot_png(report: ModelReport) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlottingUnavailable("plots need matplotlib: pip install 'servometer[report]'") from exc
    classification = report.task == "classification"
    label = "accuracy on the evaluation set" if classification else "mean cosine similarity to the reference"
    figure, all_axes = plt.subplots(1, 3, figsize=(16, 4.5))
    axes = all_axes[:2]
    largest = report.variants[0].max_batch.batch
    titles = ("batch 1: median latency", f"batch {largest}: median latency per sample")
    for axis, title in zip(axes, titles, strict=True):
        for index, variant in enumerate(report.variants):
            quality = variant.quality.accuracy if classification else variant.quality.cosine_mean
            latency = variant.batch_1.p50_s if axis is axes[0] else variant.max_batch.p50_s / largest
            axis.scatter(latency * 1e3, quality, s=60, zorder=3)
            # Variants often share a point (same quality, near-equal speed): stagger the labels so all stay legible.
            offset = (6, 4 + 11 * (index % 4 - 1))
            axis.annotate(variant.name, (latency * 1e3, quality), textcoords="offset points", xytext=offset)
        axis.set_title(title)
        axis.set_xlabel("milliseconds (lower is faster)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel(label)
    _pareto(all_axes[2], report)
    figure.suptitle(f"{report.model}: quality against latency of each variant ({report.evaluation_samples} samples)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _pareto(axis: Any, report: ModelReport) -> None:
    """Quality kept against samples per dollar, the Pareto frontier joined: a variant off it is beaten on both."""
    front = set(report.pareto_front())
    unit = "samples per dollar" if report.price_per_hour else "samples/s (no price set)"
    points = {v.name: (report.samples_per_dollar(v), 1.0 - v.quality_loss) for v in report.variants}
    for index, (name, (speed, kept)) in enumerate(points.items()):
        axis.scatter(speed, kept, s=80 if name in front else 40, marker="o" if name in front else "x", zorder=3)
        axis.annotate(name, (speed, kept), textcoords="offset points", xytext=(6, 4 + 11 * (index % 4 - 1)))
    frontier = sorted(points[name] for name in front)
    axis.plot([p[0] for p in frontier], [p[1] for p in frontier], linestyle="--", color="grey", zorder=2)
    axis.set_xscale("log")
    axis.set_title("Pareto frontier (circles on it; crosses beaten on both)")
    axis.set_xlabel(f"{unit}, largest batch (more is cheaper)")
    axis.set_ylabel("quality kept: 1 - loss against the reference")
    axis.grid(True, alpha=0.3)
