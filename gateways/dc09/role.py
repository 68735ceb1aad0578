"""``anxin gateway dc09``: the receiver on the gateway runner (anxin/gateway.py)."""

from __future__ import annotations

from anxin.gateway import run_gateway
from anxin.settings import ConfigError, Settings
from gateways.dc09.accounts import NO_ACCOUNTS, Accounts, AccountsError, load_accounts
from gateways.dc09.receiver import Receiver
from gateways.dc09.server import Dc09Server, ServerOptions
from gateways.dc09.window import parse_listen, parse_window
from gateways.link import GatewayLink

NAME = "dc09"


def accounts_of(settings: Settings) -> Accounts:
    if settings.dc09_accounts is None:
        return NO_ACCOUNTS
    try:
        return load_accounts(settings.dc09_accounts)
    except AccountsError as exc:
        raise ConfigError(f"ANXIN_DC09_ACCOUNTS: {exc}") from None


async def run_dc09(settings: Settings) -> None:
    broker = settings.dc09_broker
    if broker is None:
        raise ConfigError("ANXIN_DC09_MQTT_URL is not set (the receiver's own broker account)")
    host, port = parse_listen(settings.dc09_listen)
    receiver = Receiver(accounts_of(settings), parse_window(settings.dc09_timestamp_window))
    options = ServerOptions(host=host, port=port, sos_ack_timeout_s=settings.dc09_sos_ack_timeout_s)

    def build(link: GatewayLink) -> Dc09Server:
        return Dc09Server(link, receiver, options)

    await run_gateway(settings, NAME, broker, build)
