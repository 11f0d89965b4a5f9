"""Build the result cache the settings ask for."""

from app.cache.backend import CacheBackend
from app.cache.breaker import CircuitBreaker
from app.cache.cache import ResultCache
from app.cache.memory import MemoryBackend
from app.cache.redis import RedisBackend
from app.config import Settings
from app.telemetry.metrics import Metrics


def build_cache(settings: Settings, metrics: Metrics) -> ResultCache | None:
    """The in-memory cache by default, Redis when ``redis_url`` is set (or asked for), None when off."""
    choice = settings.cache_backend
    if choice == "off":
        return None
    if choice == "redis" or (choice == "auto" and settings.redis_url):
        if not settings.redis_url:
            raise ValueError("cache_backend is redis but SERVOMETER_REDIS_URL is not set")
        backend: CacheBackend | MemoryBackend = RedisBackend(
            settings.redis_url, settings.redis_key_prefix, settings.redis_timeout_s, settings.redis_max_connections
        )
    else:
        backend = MemoryBackend(settings.cache_max_bytes)
    breaker = CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_reset_s)
    return ResultCache(backend, breaker, metrics.for_cache(backend.name))
