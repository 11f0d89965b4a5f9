"""Processing steps around a model (tokenizing text, naming classes, a model folder's own functions) and the
pipeline that runs them with the model on whole batches, off the event loop."""
