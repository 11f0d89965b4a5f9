"""The Open Inference Protocol (KServe v2) wire format: schemas, datatypes and the JSON/binary codec."""
