"""JSON API of the ledger: debtors, contact points, flags, accounts, schedules, payments."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ledger"])
