"""The ``foley`` console script (see :mod:`foley.cli.main`)."""
