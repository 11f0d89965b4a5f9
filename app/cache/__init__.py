"""The result cache: keys, in-memory LRU and Redis backends, circuit breaker, single flight."""
