"""``geoip``: country, city and location of the event's IP address from a MaxMind database."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import maxminddb
from pydantic import Field

from streams.plugins import Event, Plugin, PluginConfig, PluginContext, PluginError

# PostHog's property (without ``$geoip_``) → where GeoIP2/GeoLite2 City and Country records keep it.
# ``names`` paths end in the language, filled in from the config.
FIELDS: tuple[tuple[str, tuple[str | int, ...]], ...] = (
    ("city_name", ("city", "names")),
    ("country_name", ("country", "names")),
    ("country_code", ("country", "iso_code")),
    ("continent_name", ("continent", "names")),
    ("continent_code", ("continent", "code")),
    ("postal_code", ("postal", "code")),
    ("latitude", ("location", "latitude")),
    ("longitude", ("location", "longitude")),
    ("accuracy_radius", ("location", "accuracy_radius")),
    ("time_zone", ("location", "time_zone")),
    ("subdivision_1_code", ("subdivisions", 0, "iso_code")),
    ("subdivision_1_name", ("subdivisions", 0, "names")),
    ("subdivision_2_code", ("subdivisions", 1, "iso_code")),
    ("subdivision_2_name", ("subdivisions", 1, "names")),
)


def _dig(record: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            record = record[part] if isinstance(record, list) and len(record) > part else None
        else:
            record = record.get(part) if isinstance(record, dict) else None
    return record


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address to look up, or None if ``value`` is not one (IPv4-mapped IPv6 becomes IPv4)."""
    try:
        address = ipaddress.ip_address(value.strip()) if isinstance(value, str) else None
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class GeoIP(Plugin["GeoIP.Config"]):
    """Sets $geoip_* properties (country, city, location) from $ip using a MaxMind database.

    The address is the ``$ip`` property, else the address the event was captured from. Events
    with a truthy ``$geoip_disable``, without an address, or whose address the database does not
    know pass unchanged. With ``set_person_properties`` the same keys go into the event's
    ``set`` and, prefixed ``$initial_geoip_``, into ``set_once`` (keys already there are kept).
    """

    name = "geoip"

    class Config(PluginConfig):
        database_path: Path = Field(description="A MaxMind GeoIP2 or GeoLite2 City or Country database (.mmdb).")
        language: str = Field("en", min_length=2, description="Language of the country, city and region names.")
        set_person_properties: bool = Field(True, description="Also set the location on the person: `$geoip_*` "
                                                              "in `$set`, `$initial_geoip_*` in `$set_once`.")

    def __init__(self, config: GeoIP.Config, ctx: PluginContext[GeoIP.Config]) -> None:
        super().__init__(config, ctx)
        self._reader: maxminddb.Reader | None = None
        self._fields = tuple((f"$geoip_{key}", (*path, config.language) if path[-1] == "names" else path)
                             for key, path in FIELDS)

    async def setup(self) -> None:
        """Open the database when the worker starts: a missing or unreadable file stops it there."""
        path = self.config.database_path
        try:
            self._reader = maxminddb.open_database(path)
        except FileNotFoundError as exc:
            raise PluginError(f"database_path {path} does not exist") from exc
        except (OSError, maxminddb.InvalidDatabaseError) as exc:
            raise PluginError(f"cannot open database_path {path} as a MaxMind database: {exc}") from exc

    async def process(self, event: Event, ctx: PluginContext[GeoIP.Config]) -> Event | None:
        if self._reader is None:
            raise PluginError("the database is not open: process() before setup()")
        address = _address(event.properties.get("$ip") or event.ip)
        if address is None or event.properties.get("$geoip_disable"):
            return event
        try:
            record = self._reader.get(address)
        except ValueError:
            return event  # an IPv6 address and an IPv4-only database
        if record is None:
            return event
        found = {key: value for key, path in self._fields if (value := _dig(record, path)) is not None}
        event.properties.update(found)
        if self.config.set_person_properties:
            for key, value in found.items():
                event.set.setdefault(key, value)
                event.set_once.setdefault(key.replace("$geoip_", "$initial_geoip_", 1), value)
        return event

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
