"""Integrations with other libraries, each imported on its own (``orthoact.integrations.transformers``)."""
