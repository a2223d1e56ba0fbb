"""Errors of the retrieval index: ``str(error)`` is one line, what was wrong and what to do.

Every class subclasses :class:`ValueError` (through :class:`RetrievalIndexError`), so callers that
only know ``ValueError`` still catch them. This module imports nothing from ``foley``.
"""


class RetrievalIndexError(ValueError):
    """Base class of every error :mod:`retrieval_index` raises for a user."""


class IndexNotFoundError(RetrievalIndexError):
    """No index at the path (or its current version directory is missing)."""


class IndexExistsError(RetrievalIndexError):
    """``ClipIndex.create`` on a path that already holds an index or other files."""


class IndexCorruptError(RetrievalIndexError):
    """A manifest, pointer, index or metadata file is unreadable, truncated or fails a checksum."""


class IndexMismatchError(RetrievalIndexError):
    """Vectors or queries from another embedding model id or of another dimension."""


class IndexInputError(RetrievalIndexError):
    """Bad arguments: duplicate or unknown ids, missing metadata keys, unknown filter keys, NaNs."""


class UnknownIdError(IndexInputError, KeyError):
    """``get``/``vector`` of an id the index does not hold (also a ``KeyError``)."""

    __str__ = BaseException.__str__
