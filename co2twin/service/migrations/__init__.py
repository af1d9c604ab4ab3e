"""Alembic migrations of the service's schema (``env.py`` and ``versions/``).

Run them with :func:`co2twin.service.db.upgrade` or ``co2twin service migrate --db URL``.
"""
