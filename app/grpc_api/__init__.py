"""The Open Inference Protocol over gRPC: the same service as the HTTP routes, another transport."""
