"""Integrations with web and agent frameworks.

Each module imports its framework, so import the one you use directly (for example
``from sessionlite.integrations.fastapi import SessionServiceDep``); ``import sessionlite``
never imports a framework.
"""
