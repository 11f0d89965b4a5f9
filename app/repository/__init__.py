"""The model repository: ``model.yaml`` manifests and the registry of loaded variants."""
