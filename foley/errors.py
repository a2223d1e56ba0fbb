"""The project's error types: what a user sees is ``str(error)``, one line."""


class FoleyError(Exception):
    """Base class of every error the project raises for a user."""


class InputError(FoleyError, ValueError):
    """A file or argument that cannot be used (corrupt, empty, too long, wrong kind...)."""


class ModelMismatchError(FoleyError, ValueError):
    """Weights, vectors or an index built for another model, dimension or config."""


class MissingNetworkError(FoleyError, FileNotFoundError):
    """A pretrained evaluation network (requirements-weights.lock) that is not installed."""


def one_line(err: BaseException, hide: str = "") -> str:
    """A user-facing line for any error: a FoleyError's text, else its type and first line;
    ``hide``: a text (such as a data folder's path) taken out of it."""
    text = str(err).replace(hide, "") if hide else str(err)
    if isinstance(err, FoleyError):
        return text
    first = (text.strip().splitlines() or [""])[0][:200]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
