"""Integrations with other libraries; each needs its own extra."""
