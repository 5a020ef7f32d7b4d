"""Amounts are Decimals checked against the currency's minor units (ISO 4217 exponent from CLDR)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, is_currency


class InvalidAmount(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def parse_currency(value: object) -> str:
    code = str(value or "").strip().upper()
    # babel knows historic and test codes too (XXX, XTS): a payment needs a real, 3-letter one.
    if len(code) != 3 or not code.isalpha() or not is_currency(code) or code in {"XXX", "XTS"}:
        raise InvalidAmount(f"unknown currency {value!r}: use an ISO 4217 code", "currency")
    return code


def parse_amount(value: object, currency: str) -> Decimal:
    """A positive Decimal with no more decimals than the currency has minor units."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidAmount('amount must be a decimal number, e.g. "10.50"', "amount")
    try:
        # str() of a float is its shortest repr, so 10.13 stays 10.13 (not 10.1299999…).
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidAmount(f"amount {value!r} is not a decimal number", "amount") from None
    if not amount.is_finite():
        raise InvalidAmount("amount must be a finite number", "amount")
    if amount <= 0:
        raise InvalidAmount("amount must be greater than zero", "amount")
    if amount >= Decimal(10) ** 19:
        raise InvalidAmount("amount is too large", "amount")
    places = get_currency_precision(currency)
    step = Decimal(1).scaleb(-places)
    if -amount.as_tuple().exponent > places and amount != amount.quantize(step):
        raise InvalidAmount(f"{currency} has {places} decimal places; {value} has more", "amount")
    return amount.quantize(Decimal(1).scaleb(-places))


def to_minor_units(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(get_currency_precision(currency)))


def format_amount(amount: Decimal, currency: str) -> str:
    """The amount with exactly the currency's decimal places, as providers expect it."""
    places = get_currency_precision(currency)
    return str(amount.quantize(Decimal(1).scaleb(-places)))
