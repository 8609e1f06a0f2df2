"""Persistence for omnireach: SQLAlchemy 2 models, repositories and Alembic migrations.

Imports nothing of ours but ``core``; knows nothing of Temporal or HTTP. Repository functions take a
``Session`` first and never commit: the caller owns the transaction (one send = one transaction).
"""
