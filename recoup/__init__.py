"""Recoup: credit-control and debt-collection management (催收管理系统)."""

__version__ = "0.1.0"
