"""A local Bot API server that speaks the subset labelbot uses, with a side to act as users."""

from bot.sandbox.core import ApiError, Limits, Sandbox, SandboxUser
from bot.sandbox.server import SandboxServer

__all__ = ["ApiError", "Limits", "Sandbox", "SandboxServer", "SandboxUser"]
