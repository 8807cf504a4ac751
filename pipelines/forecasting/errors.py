"""What a series or a forecast's input can get wrong, by kind. Each is a ValueError whose message names the value
and what is allowed; the service answers a :class:`ForecastInputError` or a :class:`DataError` with a 422."""

from __future__ import annotations


class DataError(ValueError):
    """A series that cannot be used (a file, a table, a batch of observations); the message names the row or column
    and what is allowed."""


class ForecastInputError(ValueError):
    """A forecast request's input the model cannot take; the subclasses say which part."""

    def at(self, where: str) -> ForecastInputError:
        """The same error with its place in a larger body first (``"requests[3]: "``)."""
        return type(self)(f"{where}{self}")


class HistoryError(ForecastInputError):
    """A history (sent or stored) the model cannot forecast from; the message names the numbers."""


class TimestampsError(ForecastInputError):
    """A time axis a forecast cannot continue: timestamps that cannot be read, out of order or without a frequency,
    a stored window with a gap, or a continuation past what timestamps can hold."""


class HorizonError(ForecastInputError):
    """A horizon outside what the server allows."""


class NoHistoryError(ForecastInputError):
    """A request without a history where no stored series stands in for it (a panel model: nor a series named)."""
