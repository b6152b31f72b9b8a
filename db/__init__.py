"""The case database: peewee models and the case operations the worker and CLI share."""
