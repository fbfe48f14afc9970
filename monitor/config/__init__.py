"""config.toml -> a validated, frozen `monitor.types.Config`; every problem reported at once.

The package, by job:

- `load`: read the file, interpolate `${VAR}`, run the schema and the checks, collect every
  problem into one `ConfigError` (`load_config`, `resolve_config_path`). The flow and the
  decisions (durations, sizes, interpolation, databases, names, languages) are described there.
- `schema`: the pydantic models of the sections and their value checks (`parse_duration`,
  `parse_size`, the database URL, names, languages); pure.
- `checks`: what needs more than the schema: rules compiled (and a failure blamed on the entry
  at fault), channel URLs checked with Apprise (imported only when a URL is looked at),
  `insecure_permissions`, `mask_url`.
- `locate`: key paths as the user reads them (`rules[3] "nk-troops".query`) and their line.

Errors are `monitor.errors.ConfigError` (a `UserError`: the CLI exits 2).
"""

from monitor.config.checks import insecure_permissions, mask_url
from monitor.config.load import load_config, load_config_text, resolve_config_path
from monitor.config.schema import (
    MAX_NAME,
    MIN_INTERVAL,
    POSTGRES_DRIVER_MISSING,
    parse_duration,
    parse_size,
    postgres_driver_installed,
)

__all__ = [
    "MAX_NAME",
    "MIN_INTERVAL",
    "POSTGRES_DRIVER_MISSING",
    "insecure_permissions",
    "load_config",
    "load_config_text",
    "mask_url",
    "parse_duration",
    "parse_size",
    "postgres_driver_installed",
    "resolve_config_path",
]
