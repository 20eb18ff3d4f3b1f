"""Telegram update handlers, thin: parse the update, call a service, render the reply."""
