"""labelbot's settings, read from the environment and `.env`; see `.env.example`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from labeling.words import CURRENCY_CODE, DEFAULT_CURRENCY


class SettingsError(Exception):
    """A setting that cannot be used, described in one line for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    database_path: Path = Path("labelbot.db")
    # PostgreSQL instead of SQLite, for several replicas: postgresql://user:pass@host/db. It
    # may hold a password, so it is kept like the token and never printed.
    database_url: SecretStr | None = None
    coordinator_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # A task left unanswered this long returns to the pool for other workers.
    assignment_timeout_seconds: float = Field(default=600.0, gt=0, le=7 * 86400)
    # Updates handled at once, taps and messages each (bot.lanes); PTB's default of one caps a
    # busy bot at a few per second.
    concurrent_updates: int = Field(default=128, ge=1, le=4096)
    # Per-user flood control: updates a second one user may send, and how many at once.
    user_rate: float = Field(default=5.0, gt=0, le=1000)
    user_burst: int = Field(default=15, ge=1, le=10_000)
    # New messages to different users (announcements, replies); Telegram allows about 30 per
    # second.
    broadcast_rate: float = Field(default=30.0, gt=0, le=1000)
    # Paid broadcasting (allow_paid_broadcast, billed in Telegram Stars) for `/publish N paid`:
    # up to 1000 messages per second. Unset: paid broadcasts are off.
    paid_broadcast_rate: float | None = Field(default=None, gt=0, le=1000)
    # Pay below this per hour (reward over the median time per task) is flagged to the
    # coordinator, the way Prolific holds requesters to a minimum rate.
    min_hourly_rate: float = Field(default=15.0, ge=0)
    # The currency of rewards and pay, shown with every amount (an ISO 4217 code).
    currency: str = DEFAULT_CURRENCY
    # SQLite's synchronous mode: NORMAL survives a crash of the bot; FULL also a power cut.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Webhook mode: Telegram posts updates to WEBHOOK_URL; PTB's server listens on
    # WEBHOOK_LISTEN:WEBHOOK_PORT and refuses any request without WEBHOOK_SECRET in Telegram's
    # X-Telegram-Bot-Api-Secret-Token header. Unset URL: long polling.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)

    @field_validator("webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> Settings:
        if self.webhook_url is None:
            return self
        if not self.webhook_url.startswith("https://"):
            raise ValueError("WEBHOOK_URL must be an https:// address Telegram can reach")
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
            raise ValueError(
                "WEBHOOK_SECRET must be set with WEBHOOK_URL: 16 to 256 letters, digits, _ or -"
            )
        return self

    @field_validator("coordinator_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not all(part.lstrip("-").isdigit() for part in parts):
                raise ValueError(
                    f"must be comma-separated Telegram user ids like 123,456; got {value!r}"
                )
            return tuple(int(part) for part in parts)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if not CURRENCY_CODE.fullmatch(value):
            raise ValueError(f"must be a three-letter currency code like USD or EUR; got {value!r}")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _postgres(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if not text.startswith(("postgresql://", "postgres://")):
            # The value itself is not repeated: it may hold a password.
            raise ValueError("must be a postgresql:// URL (unset, labelbot uses DATABASE_PATH)")
        return value

    @field_validator("sqlite_synchronous", "log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def token(self) -> str:
        """The bot token; `run` cannot start without one."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value():
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in .env"
                " (see .env.example)"
            )
        return self.telegram_bot_token.get_secret_value()


def load_settings(**overrides: Any) -> Settings:
    """Reads the settings; a bad value becomes one clear line, never a traceback."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            name = str(detail["loc"][0]).upper() if detail["loc"] else "WEBHOOK"
            problems.append(f"{name}: {detail['msg'].removeprefix('Value error, ')}")
        raise SettingsError("; ".join(problems)) from None
