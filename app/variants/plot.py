"""The variant report as a PNG: quality against latency, one point per variant, at batch 1 and at the largest
batch (per sample), so the trade-off between a faster variant and its answers is one look."""

import io

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
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
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
    figure.suptitle(f"{report.model}: quality against latency of each variant ({report.evaluation_samples} samples)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
