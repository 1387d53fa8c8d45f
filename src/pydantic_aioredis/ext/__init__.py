"""Integrations with other libraries; each needs its own extra."""

from .._legacy_imports import install_fastapi_alias

install_fastapi_alias()  # `pydantic_aioredis.ext.FastAPI`, the 1.4 import path
