"""The model.yaml schema: what a model folder declares, validated once, read by every layer above."""
