from __future__ import annotations

from pathlib import Path

import pytest

from anxin.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ANXIN_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.mqtt_url is None
    assert settings.database_url == "sqlite:///./var/anxin.db"
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)


def test_the_environment_wins_over_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "anxin.toml"
    config.write_text('api_port = 9001\nmqtt_url = "mqtt://u:p@broker:1884"\nlog_format = "json"\n')
    monkeypatch.setenv("ANXIN_API_PORT", "9002")
    settings = load_settings(config)
    assert settings.api_port == 9002
    assert settings.log_format == "json"
    broker = settings.broker
    assert broker is not None
    assert (broker.host, broker.port, broker.username, broker.password) == (
        "broker",
        1884,
        "u",
        "p",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ANXIN_API_PORT", "abc", "ANXIN_API_PORT='abc': Input should be a valid integer"),
        ("ANXIN_API_PORT", "70000", "ANXIN_API_PORT='70000': Input should be less than"),
        ("ANXIN_LOG_FORMAT", "xml", "ANXIN_LOG_FORMAT='xml': Input should be 'console' or 'json'"),
        ("ANXIN_MQTT_URL", "http://u:secret@h", "ANXIN_MQTT_URL: scheme must be mqtt://"),
        ("ANXIN_DATABASE_URL", "mysql://u:secret@h/db", "ANXIN_DATABASE_URL: must start with"),
    ],
)
def test_a_bad_value_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert "secret" not in text  # URLs may carry passwords: never echoed


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "anxin.toml"
    config.write_text("api_prot = 8001\n")
    with pytest.raises(ConfigError, match=r"^api_prot=8001: not a setting anxin knows"):
        load_settings(config)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("api_port = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(broken)


def test_a_bad_rules_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[fall]\ncancel_window_s = 9999\n")
    monkeypatch.setenv("ANXIN_RULES_FILE", str(rules))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("ANXIN_RULES_FILE=")
    assert "rules: fall.cancel_window_s: Input should be less than or equal to 600" in str(
        caught.value
    )


def test_rules_may_name_only_models_of_the_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[welfare.test_days_by_model]\nsmoke-detector = 30\nteleporter = 3\n")
    monkeypatch.setenv("ANXIN_RULES_FILE", str(rules))
    with pytest.raises(ConfigError, match="unknown device model teleporter"):
        load_settings()
    rules.write_text("[welfare.test_days_by_model]\nsmoke-detector = 30\n")
    assert load_settings().rules.welfare.test_days_by_model == {"smoke-detector": 30}


def test_catalogue_overrides_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANXIN_DEVICE_MODELS", '{"sos-pendant": {"heartbeat_s": 600}}')
    assert load_settings().catalogue["sos-pendant"].heartbeat_s == 600
    monkeypatch.setenv("ANXIN_DEVICE_MODELS", '{"teleporter": {"heartbeat_s": 600}}')
    with pytest.raises(ConfigError, match="ANXIN_DEVICE_MODELS: unknown device model"):
        load_settings()


def test_influx_v1_and_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().influx_api is None
    v1 = load_settings(influx_url="http://influx:8086/", influx_db="anxin")
    assert (v1.influx_api, v1.influx_url, v1.influx_batch_size) == (
        "v1",
        "http://influx:8086",
        5000,
    )
    assert v1.telemetry_spool_dir.parent == Path("var/telemetry-spool")
    v2 = load_settings(
        influx_url="https://influx", influx_org="o", influx_bucket="b", influx_token="t"
    )
    assert v2.influx_api == "v2"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"influx_db": "anxin"}, "need ANXIN_INFLUX_URL"),
        ({"influx_url": "http://i:8086"}, r"needs ANXIN_INFLUX_DB \(v1 API\) or"),
        ({"influx_url": "http://i", "influx_db": "a", "influx_bucket": "b"}, "not both"),
        ({"influx_url": "http://i", "influx_bucket": "b"}, "v2 API needs ANXIN_INFLUX_ORG"),
        ({"influx_url": "influx:8086", "influx_db": "a"}, "ANXIN_INFLUX_URL: must start with"),
        ({"influx_batch_size": 0}, "ANXIN_INFLUX_BATCH_SIZE=0: Input should be greater"),
        (
            {"influx_url": "http://i", "influx_db": "a", "influx_buffer_points": 10},
            "must hold at least one batch",
        ),
    ],
)
def test_influx_settings_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**values)
    assert "influx:8086" not in str(caught.value)  # URLs may hold passwords: never echoed


def test_the_notification_webhook_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().notify_webhook_url is None
    monkeypatch.setenv("ANXIN_NOTIFY_WEBHOOK_URL", "https://hooks.example.cn/anxin?token=abc")
    monkeypatch.setenv("ANXIN_NOTIFY_WEBHOOK_SECRET", "s" * 32)
    settings = load_settings()
    assert settings.notify_webhook_url == "https://hooks.example.cn/anxin?token=abc"
    monkeypatch.setenv("ANXIN_NOTIFY_WEBHOOK_URL", "ftp://secret@hooks.example.cn/")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("ANXIN_NOTIFY_WEBHOOK_URL: must be an http://")
    assert "secret" not in str(caught.value)  # a URL may carry a token: never echoed
    monkeypatch.setenv("ANXIN_NOTIFY_WEBHOOK_URL", "https://hooks.example.cn/")
    monkeypatch.setenv("ANXIN_NOTIFY_WEBHOOK_SECRET", "short-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert (
        str(caught.value)
        == "ANXIN_NOTIFY_WEBHOOK_SECRET: needs at least 16 characters (try: openssl rand -hex 32)"
    )
    monkeypatch.delenv("ANXIN_NOTIFY_WEBHOOK_SECRET")
    monkeypatch.setenv("ANXIN_NOTIFY_CONTACT_GATEWAY", "no_such_gateway_module:make")
    with pytest.raises(
        ConfigError,
        match="ANXIN_NOTIFY_CONTACT_GATEWAY='no_such_gateway_module:make': cannot import",
    ):
        load_settings()


def test_the_alert_stream_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from anxin.service import stream_settings

    monkeypatch.setenv("ANXIN_SSE_KEEPALIVE_S", "5")
    monkeypatch.setenv("ANXIN_SSE_MAX_STREAMS", "20")
    streams = stream_settings(load_settings())
    assert (streams.keepalive_s, streams.poll_s, streams.max_streams, streams.backlog) == (
        5.0,
        0.5,
        20,
        1000,
    )
    monkeypatch.setenv("ANXIN_SSE_MAX_STREAMS", "0")
    with pytest.raises(ConfigError, match="ANXIN_SSE_MAX_STREAMS='0': Input should be greater"):
        load_settings()


def test_the_api_downlink_needs_an_account_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANXIN_MQTT_URL", "mqtt://anxin:pw@broker:1883")
    monkeypatch.setenv("ANXIN_MQTT_DOWNLINK_URL", "mqtt://anxin:pw@broker:1883")
    with pytest.raises(ConfigError, match="needs a broker account of its own"):
        load_settings()
    monkeypatch.setenv("ANXIN_MQTT_DOWNLINK_URL", "mqtt://anxin-api:pw2@broker:1883")
    downlink = load_settings().downlink_broker
    assert downlink is not None
    assert downlink.username == "anxin-api"


def test_each_gateway_needs_an_account_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANXIN_MQTT_URL", "mqtt://anxin:pw@broker:1883")
    monkeypatch.setenv("ANXIN_WATCH_MQTT_URL", "mqtt://anxin:pw@broker:1883")
    with pytest.raises(ConfigError, match="ANXIN_WATCH_MQTT_URL needs a broker account"):
        load_settings()
    monkeypatch.setenv("ANXIN_WATCH_MQTT_URL", "mqtt://gw-watch:pw@broker:1883")
    monkeypatch.setenv("ANXIN_DC09_MQTT_URL", "mqtt://gw-watch:pw@broker:1883")
    with pytest.raises(ConfigError, match="ANXIN_DC09_MQTT_URL needs a broker account"):
        load_settings()
    monkeypatch.setenv("ANXIN_DC09_MQTT_URL", "mqtts://gw-dc09:pw@broker:8883")
    settings = load_settings()
    assert settings.watch_broker is not None
    assert settings.watch_broker.username == "gw-watch"
    assert settings.dc09_broker is not None
    assert settings.dc09_broker.tls
