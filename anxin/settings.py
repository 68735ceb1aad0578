"""Configuration: ``ANXIN_*`` environment variables over an optional TOML file."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alerting.notifiers import gateway_factory
from alerting.rules import RulesError, RuleSet, load_rules
from devices.catalogue import Catalogue, CatalogueError, apply_overrides
from ingest.mqtt import BrokerAddress, MqttUrlError

ENV_PREFIX = "ANXIN_"
_SENSITIVE = frozenset(
    {
        "mqtt_url",
        "mqtt_downlink_url",
        "watch_mqtt_url",
        "dc09_mqtt_url",
        "database_url",
        "secret_key",
        "notify_webhook_url",
        "notify_webhook_secret",
        "influx_url",
        "influx_token",
    }
)


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # Broker: mqtt://user:pass@host:port; None runs the embedded broker (demo only).
    mqtt_url: str | None = None
    # The broker account of an `anxin api` process's own publish-only connection (Acks and
    # Commands). Its own account, not ingest's: with use_username_as_clientid (deploy/
    # mosquitto.conf) one account is one client, and a second connection would take over
    # ingest's session and the SOS queued in it. Unset: an API-only process tells no device.
    mqtt_downlink_url: str | None = None
    mqtt_topic_prefix: str = "anxin/v1"
    # Stable across restarts, so the broker keeps our session and queued messages.
    mqtt_client_id: str = Field(default_factory=lambda: f"anxin-{socket.gethostname()}"[:64])
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # Several ingest processes share the load through $share/{group}/... when this is set.
    mqtt_shared_group: str | None = None
    mqtt_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 2000
    # `anxin demo` without ANXIN_MQTT_URL: the embedded broker's port (a free one if taken).
    embedded_mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883

    database_url: str = "sqlite:///./var/anxin.db"
    var_dir: Path = Path("var")

    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # Signs bearer tokens; when unset, a random one is kept in {var_dir}/secret_key.
    secret_key: SecretStr | None = None
    token_lifetime_hours: Annotated[float, Field(gt=0, le=24 * 7)] = 12

    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Debugging a leak (anxin/memtrace.py): tracemalloc with this many frames, SIGUSR1 dumps.
    debug_tracemalloc_frames: Annotated[int, Field(ge=0, le=100)] = 0
    # anxin_malloc_bytes on /metrics (anxin/native_memory.py): each scrape walks malloc's lists.
    debug_malloc_metrics: bool = False

    ingest_max_batch: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # Ingest members (ANXIN_MQTT_SHARED_GROUP on PostgreSQL): a member unseen this long, whose
    # lock is free, is gone, and a live member drains its broker session (ingest/takeover.py).
    ingest_takeover_grace_s: Annotated[float, Field(ge=1, le=300)] = 5.0

    # Telemetry in InfluxDB (docs/telemetry.md); no URL: telemetry is not stored.
    influx_url: str | None = None
    # v1 API (/write, /query): the database. v2 API (/api/v2/write): org, bucket and token.
    influx_db: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    # v2: the API token; v1: optional (InfluxDB 2.x's compatibility API and 3.x want one).
    influx_token: SecretStr | None = None
    # InfluxDB's advice: 5000 lines per write; its client libraries flush every second.
    influx_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    influx_flush_interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    # Points held in memory before whole batches go to the spool.
    influx_buffer_points: Annotated[int, Field(ge=1, le=10_000_000)] = 50_000
    # Default: {var_dir}/telemetry-spool/{mqtt_client_id}, one per ingest process.
    influx_spool_dir: Path | None = None
    influx_spool_max_mb: Annotated[float, Field(gt=0, le=1_000_000)] = 1024
    influx_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10
    # `anxin db upgrade`: the retention policy it creates (v1 API).
    influx_retention_days: Annotated[int, Field(ge=1, le=36_500)] = 400

    # The alert stream (SSE): keep-alive comment interval; how often the API looks for changes
    # made by other processes; open streams per API process; events replayed on resume.
    sse_keepalive_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    sse_poll_s: Annotated[float, Field(ge=0.05, le=30)] = 0.5
    sse_max_streams: Annotated[int, Field(ge=1, le=10_000)] = 200
    sse_backlog: Annotated[int, Field(ge=1, le=100_000)] = 1000

    # Zigbee2MQTT gateways' base topic; "" turns the adapter off.
    zigbee2mqtt_base_topic: str = "zigbee2mqtt"
    # Changes to the device-model catalogue, e.g. {"sos-pendant": {"heartbeat_s": 600}}
    # (a [device_models.sos-pendant] table in TOML, or JSON in ANXIN_DEVICE_MODELS).
    device_models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Alert rules (alerting/default_rules.toml documents them); this file changes some.
    rules_file: Path | None = None

    # Notifications (escalations to supervisors, alerts to elders' contacts): a webhook that
    # gets a JSON POST for each, signed with the secret when one is set.
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    notify_webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # An SMS or voice gateway for the contacts, package.module:factory (alerting/notifiers.py,
    # ContactGateway); without one, contacts' notifications go to the webhook.
    notify_contact_gateway: str | None = None

    # The gateways' own broker accounts (`anxin gateway watch`, `anxin gateway dc09`): each its
    # own, neither ingest's nor the other's, for the same reason as ANXIN_MQTT_DOWNLINK_URL.
    watch_mqtt_url: str | None = None
    dc09_mqtt_url: str | None = None

    # The 4G watch gateway (`anxin gateway watch`, docs/watch-gateway.md). Where it listens
    # (host:port; 5900 is the port of the vendor document's examples); silence after which a
    # watch's connection is closed (past the 5-8 min keep-alive of a watch at rest); a file
    # of the watch ids allowed to connect, one a line (unset: any id); whether a watch is
    # sent APPLOCK,DW-1 (GPS on) once per connection, after its first LK is answered.
    watch_listen: str = "0.0.0.0:5900"
    watch_idle_timeout_s: Annotated[float, Field(ge=60, le=3600)] = 600
    watch_allowed_ids_file: Path | None = None
    watch_gps_on: bool = True

    # `anxin gateway dc09` (docs/dc09-receiver.md): TCP and UDP on one host:port; the accounts
    # file (TOML: keys, device ids, code tables); the timestamp window "PAST,FUTURE" seconds or
    # "off"; how long an SOS waits for anxin's Ack `received` before the panel gets no reply.
    dc09_listen: str = "127.0.0.1:9009"
    dc09_accounts: Path | None = None
    dc09_timestamp_window: str = "40,20"
    dc09_sos_ack_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0

    @field_validator("watch_listen")
    @classmethod
    def _watch_listen(cls, value: str) -> str:
        listen_address(value)
        return value

    @field_validator("dc09_listen")
    @classmethod
    def _dc09_listen(cls, value: str) -> str:
        from gateways.dc09.window import parse_listen

        parse_listen(value)
        return value

    @field_validator("dc09_timestamp_window")
    @classmethod
    def _dc09_window(cls, value: str) -> str:
        from gateways.dc09.window import parse_window

        parse_window(value)
        return value

    @field_validator("mqtt_url", "mqtt_downlink_url", "watch_mqtt_url", "dc09_mqtt_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                BrokerAddress.from_url(value)
            except MqttUrlError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(
            ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")
        ):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("device_models")
    @classmethod
    def _device_models(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        try:
            apply_overrides(value)
        except CatalogueError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("zigbee2mqtt_base_topic")
    @classmethod
    def _zigbee_base(cls, value: str) -> str:
        if value.startswith("/") or value.endswith("/") or "+" in value or "#" in value:
            raise ValueError("a topic like zigbee2mqtt, without wildcards or outer /")
        return value

    @field_validator("rules_file")
    @classmethod
    def _rules_file(cls, value: Path | None) -> Path | None:
        try:
            load_rules(value)
        except RulesError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _own_accounts(self) -> Settings:
        """One account is one client under use_username_as_clientid: a second connection on
        ingest's account would take over ingest's session and the SOS queued in it."""
        accounts = {
            "ANXIN_MQTT_URL": self.mqtt_url,
            "ANXIN_MQTT_DOWNLINK_URL": self.mqtt_downlink_url,
            "ANXIN_WATCH_MQTT_URL": self.watch_mqtt_url,
            "ANXIN_DC09_MQTT_URL": self.dc09_mqtt_url,
        }
        seen: dict[str, str] = {}
        for setting, url in accounts.items():
            username = None if url is None else BrokerAddress.from_url(url).username
            if username is None:
                continue
            if username in seen:
                raise ValueError(
                    f"{setting} needs a broker account of its own, not {seen[username]}'s"
                    " (one account is one client: it would take over that one's session)"
                )
            seen[username] = setting
        return self

    @model_validator(mode="after")
    def _influx_api(self) -> Settings:
        v1 = self.influx_db is not None
        v2 = self.influx_org is not None or self.influx_bucket is not None
        if self.influx_url is None:
            if v1 or v2 or self.influx_token is not None:
                raise ValueError("ANXIN_INFLUX_DB, _ORG, _BUCKET and _TOKEN need ANXIN_INFLUX_URL")
            return self
        if v1 and v2:
            raise ValueError(
                "set ANXIN_INFLUX_DB (v1 API) or ANXIN_INFLUX_ORG, ANXIN_INFLUX_BUCKET and"
                " ANXIN_INFLUX_TOKEN (v2 API), not both"
            )
        if not v1 and not v2:
            raise ValueError(
                "ANXIN_INFLUX_URL needs ANXIN_INFLUX_DB (v1 API) or ANXIN_INFLUX_ORG,"
                " ANXIN_INFLUX_BUCKET and ANXIN_INFLUX_TOKEN (v2 API)"
            )
        if v2 and (self.influx_org is None or self.influx_bucket is None or not self.influx_token):
            raise ValueError(
                "the InfluxDB v2 API needs ANXIN_INFLUX_ORG, ANXIN_INFLUX_BUCKET and"
                " ANXIN_INFLUX_TOKEN"
            )
        if self.influx_buffer_points < self.influx_batch_size:
            raise ValueError(
                f"ANXIN_INFLUX_BUFFER_POINTS ({self.influx_buffer_points}) must hold at least"
                f" one batch (ANXIN_INFLUX_BATCH_SIZE={self.influx_batch_size})"
            )
        return self

    @property
    def influx_api(self) -> Literal["v1", "v2"] | None:
        if self.influx_url is None:
            return None
        return "v1" if self.influx_db is not None else "v2"

    @property
    def telemetry_spool_dir(self) -> Path:
        if self.influx_spool_dir is not None:
            return self.influx_spool_dir
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.mqtt_client_id)
        return self.var_dir / "telemetry-spool" / safe_id

    @model_validator(mode="after")
    def _rules_name_known_models(self) -> Settings:
        named = self.rules.welfare.test_days_by_model
        unknown = sorted(set(named) - set(self.catalogue))
        if unknown:
            raise ValueError(
                f"rules: welfare.test_days_by_model: unknown device model {', '.join(unknown)}"
            )
        return self

    @property
    def catalogue(self) -> Catalogue:
        return apply_overrides(self.device_models)

    @property
    def rules(self) -> RuleSet:
        return load_rules(self.rules_file)

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("notify_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("needs at least 16 characters (try: openssl rand -hex 32)")
        return value

    @field_validator("notify_contact_gateway")
    @classmethod
    def _contact_gateway(cls, value: str | None) -> str | None:
        if value is not None:
            gateway_factory(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("needs at least 32 characters (try: openssl rand -base64 48)")
        return value

    @field_validator("mqtt_topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or "+" in value:
            raise ValueError("a topic prefix like anxin/v1, without leading or trailing /")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the TOML file, which arrives as init values.
        return (env_settings, init_settings)

    @property
    def broker(self) -> BrokerAddress | None:
        return None if self.mqtt_url is None else BrokerAddress.from_url(self.mqtt_url)

    @property
    def downlink_broker(self) -> BrokerAddress | None:
        url = self.mqtt_downlink_url
        return None if url is None else BrokerAddress.from_url(url)

    @property
    def watch_broker(self) -> BrokerAddress | None:
        url = self.watch_mqtt_url
        return None if url is None else BrokerAddress.from_url(url)

    @property
    def dc09_broker(self) -> BrokerAddress | None:
        url = self.dc09_mqtt_url
        return None if url is None else BrokerAddress.from_url(url)


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → its parts; ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:5900)")
    return host, int(port)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError in one line."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {config_file}") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from exc


def describe_errors(error: ValidationError) -> str:
    """``ANXIN_API_PORT='abc': Input should be a valid integer ...`` for each problem."""
    problems = []
    for item in error.errors():
        if not item["loc"]:  # a check across settings: its message names them
            problems.append(item["msg"].removeprefix("Value error, "))
            continue
        name = str(item["loc"][0])
        where = ENV_PREFIX + name.upper()
        given = item.get("input")
        # URLs and keys may carry passwords: never echo them.
        plain = isinstance(given, str | int | float) and name not in _SENSITIVE
        shown = f"={given!r}" if plain else ""
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            # It may come from the file (lower case) or the environment: name it as given.
            where, message = name, "not a setting anxin knows"
        problems.append(f"{where}{shown}: {message}")
    return "; ".join(problems)
