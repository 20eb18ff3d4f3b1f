"""A local Bot API server that speaks the subset labelbot uses, hands updates to a bot that polls
or posts them to its webhook, and has a side to act as users."""

from bot.sandbox.api import Sandbox
from bot.sandbox.server import SandboxServer
from bot.sandbox.users import SandboxUser
from bot.sandbox.wire import ApiError, Limits

__all__ = ["ApiError", "Limits", "Sandbox", "SandboxServer", "SandboxUser"]
