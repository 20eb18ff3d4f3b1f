"""How labelbot says numbers to people: amounts with their currency, counts with the right
plural. One place, so every message says them the same way."""

from __future__ import annotations

import re

DEFAULT_CURRENCY = "USD"
CURRENCY_CODE = re.compile(r"[A-Z]{3}")  # ISO 4217: three capital letters


def money(amount: float, currency: str) -> str:
    """An amount with its currency: 12.00 USD. Below one unit an amount keeps the digits that
    make it (a reward of 0.005 or 0.015 USD is not shown as nothing, or as 0.02); from one up,
    cents are enough (an hourly rate of 133.09 USD, not 133.086876 USD)."""
    if abs(amount) >= 1 or round(amount, 2) == round(amount, 6):
        return f"{amount:.2f} {currency}"
    return f"{amount:.6f}".rstrip("0") + f" {currency}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """1 worker, 2 workers, 0 workers; `nouns` for an irregular plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
