"""How labelbot says numbers to people: amounts with their currency, counts with the right
plural. One place, so every message says them the same way."""

from __future__ import annotations

import re

DEFAULT_CURRENCY = "USD"
CURRENCY_CODE = re.compile(r"[A-Z]{3}")  # ISO 4217: three capital letters


def money(amount: float, currency: str) -> str:
    """An amount with its currency: 12.00 USD; a reward below a cent keeps its digits
    (0.005 USD) rather than being shown as nothing."""
    if round(amount, 2) == round(amount, 6):
        return f"{amount:.2f} {currency}"
    return f"{amount:.6f}".rstrip("0") + f" {currency}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """1 worker, 2 workers, 0 workers; `nouns` for an irregular plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
