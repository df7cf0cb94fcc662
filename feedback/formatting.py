"""The one rounding of the figures feedback pages show."""

import math

from django.template.defaultfilters import floatformat


def figure(value: float | None, places: int = 3) -> str:
    """``value`` rounded as the templates' ``floatformat`` rounds it (half up on its
    decimal value: 0.7825 is 0.783, where an f-string says 0.782), so a table, a
    chart legend, the gate's reasons and a job log show the same digits."""
    if value is None or math.isnan(value):
        return "n/a"
    return str(floatformat(value, places))
