"""Contracts the Pressroom services share: settings, Celery app, schemas, storage, keys."""
