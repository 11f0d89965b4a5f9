"""Every Prometheus metric family Servometer exports, declared once: name, type, help, labels, buckets.

Names follow Prometheus' conventions (tests/telemetry/test_families.py checks them): ``servometer_`` first,
base units spelled out at the end (``_seconds``, ``_bytes``, ``_dollars``, ``_per_second``), counters named
without ``_total`` (prometheus_client adds it on exposition), histograms in seconds only with buckets in seconds.
Label values come only from the model repository and closed enums: a request for an unknown model creates no
series.
"""

from dataclasses import dataclass
from typing import Literal

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Cache operations: tens of microseconds in memory, a millisecond or so over the network to Redis.
CACHE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
CACHE_RESULTS = ("hit", "miss", "bypass", "error", "skipped", "pass")
OUTCOMES = ("success", "client_error", "client_timeout", "rejected", "timeout", "server_error")
DISPATCH_REASONS = ("full", "preferred", "delay", "idle")
DROP_REASONS = ("queue_full", "priority_queue_full", "timeout", "client_timeout", "disconnected", "shutdown")


@dataclass(frozen=True)
class Family:
    attribute: str
    """The :class:`app.telemetry.metrics.Metrics` attribute that holds it."""
    kind: Literal["counter", "gauge", "histogram"]
    name: str
    labels: tuple[str, ...]
    help: str
    buckets: Literal["latency", "batch", "cache"] | None = None
    """Histograms: latency (seconds, configurable), batch (samples) or cache (seconds)."""
    multiprocess_mode: str = "all"
    """Gauges: how the values of several workers combine (prometheus_client's modes)."""


# One family per entry: attribute, type, name, labels, then help (and buckets or multiprocess mode).
# fmt: off
FAMILIES: tuple[Family, ...] = (
    Family("requests", "counter", "servometer_requests", ("model", "variant", "outcome"),
           "Inference requests answered, by outcome (success, client_error, client_timeout, rejected, timeout, "
           "server_error)."),
    Family("request_duration", "histogram", "servometer_request_duration_seconds", ("model", "variant"),
           "End-to-end inference latency, from the request's arrival to its response being ready.", buckets="latency"),
    Family("model_ready", "gauge", "servometer_model_ready", ("model", "variant"),
           "1 when the variant is loaded and serving, else 0.", multiprocess_mode="livemin"),
    Family("batch_size", "histogram", "servometer_batch_size", ("model", "variant"),
           "Samples in each model call the batcher dispatched.", buckets="batch"),
    Family("batches", "counter", "servometer_batches", ("model", "variant", "reason"),
           "Model calls dispatched, by why: full (max_batch_size reached or batching off), preferred (a "
           "preferred batch size was ready), delay (the oldest request waited max_queue_delay_ms), idle "
           "(adaptive_delay: no other request in sight to join the batch)."),
    Family("queue_duration", "histogram", "servometer_queue_duration_seconds", ("model", "variant"),
           "Time each request waited in the batcher's queue before its model call started.", buckets="latency"),
    Family("compute_duration", "histogram", "servometer_compute_duration_seconds", ("model", "variant"),
           "Model compute time of each batch (one model call).", buckets="latency"),
    Family("process_duration", "histogram", "servometer_process_duration_seconds", ("model", "variant", "stage"),
           "Time the model's processing steps took on each batch: stage before (e.g. tokenizing text) or after "
           "(e.g. naming classes) the model.", buckets="latency"),
    Family("tokens", "counter", "servometer_tokens", ("model", "variant", "kind"),
           "Text models: tokens of the texts sent (kind=sent) and tokens the model calls computed, padding "
           "included (kind=computed). computed / sent is the padding waste."),
    Family("queue_depth", "gauge", "servometer_queue_depth", ("model", "variant"),
           "Requests waiting in the batcher's queue.", multiprocess_mode="livesum"),
    Family("queue_capacity", "gauge", "servometer_queue_capacity", ("model", "variant"),
           "Requests the batcher's queue holds before it rejects (max_queue_size): the scale for queue depth.",
           multiprocess_mode="livesum"),
    Family("queue_dropped", "counter", "servometer_queue_dropped_requests", ("model", "variant", "reason"),
           "Requests that never reached the model: queue_full / priority_queue_full (rejected), timeout, "
           "disconnected (client gone), shutdown."),
    Family("cache_lookups", "counter", "servometer_cache_lookups", ("model", "backend", "result"),
           "Result cache lookups: hit, miss, bypass (asked not to use the cache), error (backend failed: "
           "answered by the model), skipped (circuit breaker open: answered by the model), pass (the model's "
           "recent requests did not repeat: not looked up, answered by the model)."),
    Family("cache_coalesced", "counter", "servometer_cache_coalesced_requests", ("model",),
           "Requests answered by an identical request already computing (single flight), not by a model call."),
    Family("cache_errors", "counter", "servometer_cache_errors", ("backend", "operation"),
           "Cache backend failures by operation: get, set, corrupt (an entry that failed its checks)."),
    Family("cache_operation_duration", "histogram", "servometer_cache_operation_duration_seconds",
           ("backend", "operation"),
           "Latency of cache backend operations (get, set).", buckets="cache"),
    Family("cache_stored_bytes", "gauge", "servometer_cache_stored_bytes", ("backend",),
           "Bytes held by the in-memory cache.", multiprocess_mode="livesum"),
    Family("cache_entries", "gauge", "servometer_cache_entries", ("backend",),
           "Entries held by the in-memory cache.", multiprocess_mode="livesum"),
    Family("cache_breaker_state", "gauge", "servometer_cache_breaker_state", ("backend",),
           "Cache circuit breaker: 0 closed (calls flow), 1 half-open (probing), 2 open (backend not called).",
           multiprocess_mode="livemax"),
    Family("requests_in_flight", "gauge", "servometer_requests_in_flight", ("model", "variant"),
           "Inference requests received and not yet answered.", multiprocess_mode="livesum"),
    Family("inferences", "counter", "servometer_inferences", ("model", "variant"),
           "Samples computed by the model (a batch of 8 counts 8; cache hits count none)."),
    Family("model_load_duration", "gauge", "servometer_model_load_duration_seconds", ("model", "variant"),
           "Time the variant took to load.", multiprocess_mode="livemax"),
    Family("compute_threads", "gauge", "servometer_compute_threads", ("model", "variant"),
           "Threads one model call of the variant computes on (onnxruntime intra-op or torch threads): the CPUs "
           "the process may use, shared among workers and model instances, unless set explicitly.",
           multiprocess_mode="livemax"),
    Family("cpus_allowed", "gauge", "servometer_cpus_allowed", (),
           "CPUs this process may use at once: its affinity mask, capped by its cgroup's CPU quota.",
           multiprocess_mode="livemax"),
    Family("model_info", "gauge", "servometer_model_info",
           ("model", "variant", "runtime", "precision", "device", "digest"),
           "Always 1; the labels describe the variant: runtime, precision, device and model file digest.",
           multiprocess_mode="livemax"),
    Family("cost", "counter", "servometer_cost_dollars", ("model", "variant"),
           "Machine cost attributed to the variant: its model compute seconds times the configured price "
           "(price_per_hour, plus gpu_price_per_hour on a GPU). Divide by servometer_inferences_total for cost "
           "per inference."),
    Family("gpu_busy", "counter", "servometer_gpu_busy_seconds", ("model", "variant"),
           "GPU-seconds used by the variant, measured around each batch it runs on a GPU."),
    Family("price_per_hour", "gauge", "servometer_price_per_hour_dollars", ("resource",),
           "Configured price of the machine (resource=machine) and of one GPU (resource=gpu), per hour.",
           multiprocess_mode="livemax"),
    Family("objective_latency", "gauge", "servometer_objective_latency_p99_seconds", ("model",),
           "The model's p99 latency objective.", multiprocess_mode="livemax"),
    Family("objective_error_ratio", "gauge", "servometer_objective_error_ratio", ("model",),
           "The model's error ratio objective.", multiprocess_mode="livemax"),
    Family("objective_cost", "gauge", "servometer_objective_cost_per_1k_inferences_dollars", ("model",),
           "The model's cost budget per 1,000 inferences.", multiprocess_mode="livemax"),
    Family("objective_drift", "gauge", "servometer_objective_max_drift_psi", ("model",),
           "The model's drift threshold (population stability index).", multiprocess_mode="mostrecent"),
    Family("objective_live_accuracy", "gauge", "servometer_objective_min_live_accuracy", ("model",),
           "The model's live accuracy objective.", multiprocess_mode="mostrecent"),
    Family("objective_throughput", "gauge", "servometer_objective_min_throughput_per_second", ("model",),
           "The model's minimum throughput objective, in inferences per second.", multiprocess_mode="livemax"),
    Family("variant_quality", "gauge", "servometer_variant_quality", ("model", "variant", "metric"),
           "Variant report: quality on the model's evaluation set (metric: accuracy, macro_f1, agreement, "
           "cosine_mean, cosine_min, retrieval_top5, similarity_spearman, max_abs_error, quality_loss).",
           multiprocess_mode="mostrecent"),
    Family("variant_latency", "gauge", "servometer_variant_report_latency_seconds",
           ("model", "variant", "batch", "quantile"),
           "Variant report: model-call latency measured at batch 1 and at the largest batch.",
           multiprocess_mode="mostrecent"),
    Family("variant_throughput", "gauge", "servometer_variant_report_throughput_per_second", ("model", "variant"),
           "Variant report: samples per second at the largest batch.", multiprocess_mode="mostrecent"),
    Family("variant_cost", "gauge", "servometer_variant_report_cost_per_1k_inferences_dollars", ("model", "variant"),
           "Variant report: dollars per 1,000 inferences at the largest batch, from price_per_hour.",
           multiprocess_mode="mostrecent"),
    Family("drift_psi", "gauge", "servometer_drift_psi", ("model", "variant", "feature"),
           "Population stability index of an input (feature: its name) or of the predictions (feature: "
           "prediction) over the sampled window, against the build's reference statistics.",
           multiprocess_mode="mostrecent"),
    Family("drift_ks", "gauge", "servometer_drift_ks_statistic", ("model", "variant", "feature"),
           "Two-sample Kolmogorov-Smirnov statistic of per-sample summaries, window against reference.",
           multiprocess_mode="mostrecent"),
    Family("drift_ks_pvalue", "gauge", "servometer_drift_ks_pvalue", ("model", "variant", "feature"),
           "p-value of the Kolmogorov-Smirnov statistic.", multiprocess_mode="mostrecent"),
    Family("drift_samples", "gauge", "servometer_drift_window_samples", ("model", "variant"),
           "Sampled requests in the drift window.", multiprocess_mode="livesum"),
    Family("live_accuracy", "gauge", "servometer_live_accuracy", ("model", "variant"),
           "Accuracy over the feedback window (share judged relevant for embedding models).",
           multiprocess_mode="mostrecent"),
    Family("live_macro_f1", "gauge", "servometer_live_macro_f1", ("model", "variant"),
           "Macro-F1 over the feedback window (classifiers).", multiprocess_mode="mostrecent"),
    Family("live_samples", "gauge", "servometer_live_feedback_samples", ("model", "variant"),
           "Feedback items in the window live accuracy is computed over.", multiprocess_mode="mostrecent"),
    Family("feedback", "counter", "servometer_feedback", ("model", "variant", "result"),
           "Feedback received on earlier answers (result: correct, incorrect)."),
    Family("shadow_comparisons", "counter", "servometer_shadow_comparisons", ("model", "variant", "result"),
           "Shadow traffic: the candidate variant's answers compared with the served ones (result: agree, "
           "disagree, error, skipped)."),
    Family("grpc_calls", "counter", "servometer_grpc_calls", ("method", "code"),
           "gRPC calls answered, by method (ModelInfer, ModelMetadata, ...) and status "
           "code (OK, INVALID_ARGUMENT, UNAVAILABLE, ...). Inference over gRPC also counts in "
           "servometer_requests_total with HTTP's: this tells the transports apart."),
    Family("loop_lag", "gauge", "servometer_event_loop_lag_seconds", (),
           "How late the event loop ran a callback scheduled from another thread (sampled every "
           "loop_lag_interval_s; while the loop stalls, the time so far). Every request waits at least this "
           "long.", multiprocess_mode="livemax"),
    Family("gpu_available", "gauge", "servometer_gpu_available", (),
           "1 when NVML reports GPUs to sample, else 0.", multiprocess_mode="livemax"),
    Family("gpu_utilization", "gauge", "servometer_gpu_utilization_ratio", ("gpu", "uuid"),
           "GPU busy ratio over NVML's last sample period.", multiprocess_mode="livemostrecent"),
    Family("gpu_memory_used", "gauge", "servometer_gpu_memory_used_bytes", ("gpu", "uuid"),
           "GPU memory in use.", multiprocess_mode="livemostrecent"),
    Family("gpu_memory_total", "gauge", "servometer_gpu_memory_total_bytes", ("gpu", "uuid"),
           "GPU memory in all.", multiprocess_mode="livemostrecent"),
    Family("gpu_power", "gauge", "servometer_gpu_power_watts", ("gpu", "uuid"),
           "GPU power draw.", multiprocess_mode="livemostrecent"),
)
# fmt: on
