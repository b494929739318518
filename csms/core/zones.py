"""The local time zone of a Location, where tariff time restrictions are read.

OCPI mod_tariffs §TariffRestrictions: start/end time and date are "in local time, the time
zone is defined in the `time_zone` field of the Location". When that field does not name
an IANA zone, csms falls back to the zone of the Location's country (docs/tariffs.md,
"Time zones"): the zone of its capital for countries with several. With neither, UTC.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# ISO 3166-1 alpha-3 (OCPI Location.country) -> the IANA zone of the capital.
COUNTRY_ZONES = {
    "ALB": "Europe/Tirane",
    "AND": "Europe/Andorra",
    "ARE": "Asia/Dubai",
    "ARG": "America/Argentina/Buenos_Aires",
    "AUS": "Australia/Sydney",
    "AUT": "Europe/Vienna",
    "BEL": "Europe/Brussels",
    "BGR": "Europe/Sofia",
    "BIH": "Europe/Sarajevo",
    "BLR": "Europe/Minsk",
    "BRA": "America/Sao_Paulo",
    "CAN": "America/Toronto",
    "CHE": "Europe/Zurich",
    "CHL": "America/Santiago",
    "CHN": "Asia/Shanghai",
    "COL": "America/Bogota",
    "CYP": "Asia/Nicosia",
    "CZE": "Europe/Prague",
    "DEU": "Europe/Berlin",
    "DNK": "Europe/Copenhagen",
    "EGY": "Africa/Cairo",
    "ESP": "Europe/Madrid",
    "EST": "Europe/Tallinn",
    "FIN": "Europe/Helsinki",
    "FRA": "Europe/Paris",
    "GBR": "Europe/London",
    "GRC": "Europe/Athens",
    "HKG": "Asia/Hong_Kong",
    "HRV": "Europe/Zagreb",
    "HUN": "Europe/Budapest",
    "IDN": "Asia/Jakarta",
    "IND": "Asia/Kolkata",
    "IRL": "Europe/Dublin",
    "ISL": "Atlantic/Reykjavik",
    "ISR": "Asia/Jerusalem",
    "ITA": "Europe/Rome",
    "JPN": "Asia/Tokyo",
    "KOR": "Asia/Seoul",
    "LIE": "Europe/Vaduz",
    "LTU": "Europe/Vilnius",
    "LUX": "Europe/Luxembourg",
    "LVA": "Europe/Riga",
    "MAR": "Africa/Casablanca",
    "MCO": "Europe/Monaco",
    "MDA": "Europe/Chisinau",
    "MEX": "America/Mexico_City",
    "MKD": "Europe/Skopje",
    "MLT": "Europe/Malta",
    "MNE": "Europe/Podgorica",
    "MYS": "Asia/Kuala_Lumpur",
    "NLD": "Europe/Amsterdam",
    "NOR": "Europe/Oslo",
    "NZL": "Pacific/Auckland",
    "PHL": "Asia/Manila",
    "POL": "Europe/Warsaw",
    "PRT": "Europe/Lisbon",
    "ROU": "Europe/Bucharest",
    "RUS": "Europe/Moscow",
    "SAU": "Asia/Riyadh",
    "SGP": "Asia/Singapore",
    "SMR": "Europe/San_Marino",
    "SRB": "Europe/Belgrade",
    "SVK": "Europe/Bratislava",
    "SVN": "Europe/Ljubljana",
    "SWE": "Europe/Stockholm",
    "THA": "Asia/Bangkok",
    "TUR": "Europe/Istanbul",
    "TWN": "Asia/Taipei",
    "UKR": "Europe/Kyiv",
    "USA": "America/New_York",
    "VNM": "Asia/Ho_Chi_Minh",
    "ZAF": "Africa/Johannesburg",
}


@cache
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def location_zone(time_zone: str | None, country: str | None) -> tzinfo:
    """The Location's `time_zone`; failing that its country's zone; failing that UTC."""
    if time_zone:
        zone = _zone(time_zone)
        if zone is not None:
            return zone
    if country and (name := COUNTRY_ZONES.get(country.upper())) is not None:
        zone = _zone(name)
        if zone is not None:
            return zone
    return UTC
