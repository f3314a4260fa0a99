"""JSON API of the daily cycle: runs and their counts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["cycle"])
